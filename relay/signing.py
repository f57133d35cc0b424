"""Request signatures: pure functions of a secret and the exact body bytes.

Two schemes ride on every request. ``X-Signature`` is Blue's: the lowercase hex
HMAC-SHA256 of the body keyed with the secret's UTF-8 bytes. The Standard Webhooks
headers add a timestamp to the signed content, which closes the replay gap of the
first scheme: ``webhook-signature`` is ``v1,`` and the base64 HMAC-SHA256 of
``{id}.{timestamp}.{body}``, keyed with the base64-decoded part of a ``whsec_``
secret (or the secret's UTF-8 bytes when it has another form).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """A new random secret in the Standard Webhooks form, 24 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def blue_signature(secret: str, body: bytes) -> str:
    """The ``X-Signature`` value: lowercase hex HMAC-SHA256 of the body."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def standard_signing_key(secret: str) -> bytes:
    """The key of the Standard Webhooks scheme for this secret."""
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass
    return secret.encode("utf-8")


def standard_signature(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> str:
    """The ``webhook-signature`` value: ``v1,`` and a base64 HMAC-SHA256."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_signing_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_headers(
    secret: str, message_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Both schemes' headers for one request."""
    return {
        "X-Signature": blue_signature(secret, body),
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, message_id, timestamp, body),
    }


def verify_blue_signature(secret: str, body: bytes, signature: str) -> bool:
    """True when ``signature`` is the body's ``X-Signature``; constant time."""
    return hmac.compare_digest(blue_signature(secret, body), signature)


def verify_standard_signature(
    secret: str, message_id: str, timestamp: int, body: bytes, header: str
) -> bool:
    """True when any ``v1`` signature in the header matches; constant time."""
    expected = standard_signature(secret, message_id, timestamp, body)
    return any(
        hmac.compare_digest(expected, candidate)
        for candidate in header.split()
        if candidate.startswith("v1,")
    )
