FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the wheel is built from, so unrelated edits keep the layer cached.
COPY pyproject.toml README.md /tmp/relay-src/
COPY relay /tmp/relay-src/relay
COPY sql /tmp/relay-src/sql
RUN pip install /tmp/relay-src && rm -rf /tmp/relay-src

RUN useradd --create-home --uid 10001 relay
USER relay
WORKDIR /home/relay

ENTRYPOINT ["relay"]
CMD ["run"]
