"""The throwaway cluster starts a real server and leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import psycopg
import pytest

from relay.cluster import ThrowawayCluster, find_server_binary
from relay.errors import ConfigError


def test_cluster_serves_queries_and_cleans_up_after_stop() -> None:
    cluster = ThrowawayCluster(durable=False)

    try:
        dsn = cluster.start()
        with psycopg.connect(dsn, connect_timeout=10) as connection:
            answer = connection.execute("select 1").fetchone()
            fsync = connection.execute("show fsync").fetchone()
            data_directory = connection.execute("show data_directory").fetchone()
    finally:
        cluster.stop()

    assert dsn == f"postgresql://postgres@127.0.0.1:{cluster.port}/postgres"
    assert answer == (1,)
    assert fsync == ("off",)
    assert data_directory is not None
    assert not Path(data_directory[0]).parent.exists()
    with pytest.raises(OSError):
        socket.create_connection((cluster.host, cluster.port), timeout=3).close()


def test_dsn_names_the_requested_database() -> None:
    cluster = ThrowawayCluster(port=54329)

    assert cluster.dsn() == "postgresql://postgres@127.0.0.1:54329/postgres"
    assert cluster.dsn("relay") == "postgresql://postgres@127.0.0.1:54329/relay"


def test_stop_without_start_does_nothing() -> None:
    cluster = ThrowawayCluster()

    cluster.stop()
    cluster.stop()


def test_find_server_binary_finds_pg_ctl() -> None:
    assert find_server_binary("pg_ctl").name == "pg_ctl"


def test_find_server_binary_names_the_fix_when_missing() -> None:
    with pytest.raises(ConfigError, match="install the PostgreSQL server binaries"):
        find_server_binary("relay-no-such-server-program")
