"""The command line: clear one-line configuration errors, split commands that need a server,
and `magpie serve` on an external Redis (the server-mode Redis path)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from activation.profiles_api.fills import DEFAULT_LIMITS, FillLimits
from magpie.embedded_redis import EmbeddedRedis
from magpie.server import fill_limits
from magpie.settings import ConfigError, load_settings
from tests.server import ServerProcess


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MAGPIE_PORT": "eighty"}, "MAGPIE_PORT"),
        ({"MAGPIE_PORT": "70000"}, "MAGPIE_PORT"),
        ({"MAGPIE_CLICKHOUSE_URL": "tcp://ch:9000"}, "MAGPIE_CLICKHOUSE_URL"),
        ({"MAGPIE_CLICKHOUSE_URL": "http://ch:8123/db"}, "MAGPIE_SECRET_KEY"),
        ({"MAGPIE_TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, "MAGPIE_TRUSTED_PROXIES"),
        ({"MAGPIE_ADMIN_TOKEN": "short"}, "MAGPIE_ADMIN_TOKEN"),
        ({"MAGPIE_GEOIP_CITY_DB": "/nonexistent.mmdb"}, "MAGPIE_GEOIP_CITY_DB"),
        ({"MAGPIE_REDIS_URL": "http://redis"}, "MAGPIE_REDIS_URL"),
        ({"MAGPIE_PROFILE_FILL_CONCURRENCY": "0"}, "MAGPIE_PROFILE_FILL_CONCURRENCY"),
        ({"MAGPIE_PROFILE_FILL_WAIT_MS": "soon"}, "MAGPIE_PROFILE_FILL_WAIT_MS"),
    ],
)
def test_invalid_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings(env)


def test_the_profile_fill_limits_are_settings() -> None:
    env = {"MAGPIE_PROFILE_FILL_CONCURRENCY": "2", "MAGPIE_PROFILE_FILL_MAX_PENDING": "5"}
    limits = fill_limits(load_settings({**env, "MAGPIE_PROFILE_FILL_WAIT_MS": "750"}))
    assert limits == FillLimits(concurrency=2, max_pending=5, wait_s=0.75)
    assert fill_limits(load_settings({})) == DEFAULT_LIMITS


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "magpie.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_bad_configuration_stops_start_up_with_one_line(tmp_path: Path) -> None:
    result = _run(["serve"], {"MAGPIE_PORT": "eighty", "MAGPIE_DATA_DIR": str(tmp_path)})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "magpie: invalid configuration: MAGPIE_PORT: must be an integer, got 'eighty'"
    ]


@pytest.mark.parametrize("command", ["collector", "api", "worker"])
def test_split_commands_need_a_clickhouse_server(tmp_path: Path, command: str) -> None:
    result = _run([command], {"MAGPIE_DATA_DIR": str(tmp_path), "MAGPIE_CLICKHOUSE_URL": ""})
    assert result.returncode == 2 and "MAGPIE_CLICKHOUSE_URL" in result.stderr


def test_serve_on_an_external_redis(tmp_path: Path) -> None:
    redis = EmbeddedRedis(tmp_path / "external")  # a separately managed redis-server
    redis.start()
    try:
        server = ServerProcess(tmp_path / "data", MAGPIE_REDIS_URL=redis.url).start()
        try:
            source = server.create_source("external-redis")
            message_id = str(uuid.uuid4())
            response = server.http.post("/v1/track", json={"event": "x", "userId": "u", "messageId": message_id,
                                                            "writeKey": source["write_key"]})  # fmt: skip
            assert response.status_code == 200
            assert [e["messageId"] for e in server.wait_for_ids(source["id"], [message_id])] == [message_id]
            assert not (server.data_dir / "redis").exists(), "no embedded redis should start"
        finally:
            server.stop()
    finally:
        redis.stop()
