"""`magpie clickhouse` as a real process, driven by a stock clickhouse-connect client and by plain
HTTP the way curl and BI drivers talk to ClickHouse."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email.message import Message
from pathlib import Path

import clickhouse_connect
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from clickhouse.client import ClickHouseTarget
from clickhouse.migrations import load_migrations, migrate
from clickhouse.server_errors import CODES
from tests.server import ROOT, free_port

PASSWORD = "s3cret-pass"
HEAVY = "SELECT sum(cityHash64(number)) FROM numbers({n:UInt64}) SETTINGS max_threads = 1"


class ClickHouseProcess:
    def __init__(self, data_dir: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
        self.env = {
            **clean,
            "MAGPIE_DATA_DIR": str(data_dir),
            "MAGPIE_CLICKHOUSE_PORT": str(self.port),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ClickHouseProcess:
        command = [sys.executable, "-m", "magpie.cli", "clickhouse"]
        self.process = subprocess.Popen(command, env=self.env, cwd=ROOT, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if urllib.request.urlopen(f"{self.url}/ping", timeout=1).read() == b"Ok.\n":
                    return self
            except OSError:
                assert self.process.poll() is None, self.process.stderr.read() if self.process.stderr else b""
                time.sleep(0.1)
        raise AssertionError("magpie clickhouse did not start")

    def stop(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        if self.process.stderr:
            self.process.stderr.close()
        return code

    def client(self, **kwargs: object) -> Client:
        return clickhouse_connect.get_client(host="127.0.0.1", port=self.port, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseProcess]:
    process = ClickHouseProcess(tmp_path_factory.mktemp("chserver") / "data").start()
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouseProcess]:
    data = tmp_path_factory.mktemp("chlocked") / "data"
    process = ClickHouseProcess(data, MAGPIE_CLICKHOUSE_PASSWORD=PASSWORD).start()
    yield process
    assert process.stop() == 0


def http(
    url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Message, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def q(sql: str) -> str:
    return urllib.parse.quote(sql)


@pytest.mark.parametrize("compress", [True, False])
def test_stock_client_round_trips_a_native_insert(server: ClickHouseProcess, compress: bool) -> None:
    client = server.client(compress=compress)
    table = f"rt_{int(compress)}"
    client.command(
        f"CREATE TABLE {table} (id UInt32, s String, n Nullable(Int64), tags Array(String), "
        "ts DateTime64(3, 'UTC'), lc LowCardinality(String), d Decimal(10, 2)) ENGINE = MergeTree ORDER BY id"
    )
    rows = [
        [
            1,
            "nul\x00byte",
            None,
            ["a", "b"],
            datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
            "x",
            Decimal("1.50"),
        ],
        [2, "é'\"\\", 7, [], datetime(2025, 6, 1, tzinfo=UTC), "y", Decimal("-2.25")],
    ]
    summary = client.insert(table, rows, column_names=["id", "s", "n", "tags", "ts", "lc", "d"])
    assert summary.written_rows == 2
    back = client.query(f"SELECT * FROM {table} ORDER BY id").result_rows
    assert [[*r[:4], r[4].replace(tzinfo=UTC), *r[5:]] for r in back] == rows
    assert client.command(f"SELECT count() FROM {table}") == 2
    assert client.server_version.startswith("26.")


def test_parameters_bind_server_side_and_client_side_without_injection(server: ClickHouseProcess) -> None:
    client = server.client()
    client.command("CREATE TABLE IF NOT EXISTS victims (v String) ENGINE = MergeTree ORDER BY v")
    client.command("INSERT INTO victims VALUES ('alive')")
    evil = "x'); DROP TABLE victims; --\\' \n\t{y:String}"
    assert client.query("SELECT {x:String}", parameters={"x": evil}).result_rows == [(evil,)]
    assert client.query("SELECT %(x)s", parameters={"x": evil}).result_rows == [(evil,)]
    many = [f"id-{i:05d}-" + "v" * 40 for i in range(300)]  # past 4 KiB: sent as multipart form fields
    found = client.query("SELECT length({u:Array(String)}), {u:Array(String)}[300]", parameters={"u": many})
    assert found.result_rows == [(300, many[-1])]
    assert client.command("SELECT v FROM victims") == "alive"


def test_curl_style_get_and_health_answers(server: ClickHouseProcess) -> None:
    assert http(f"{server.url}/?query=SELECT+1")[2] == b"1\n"
    assert http(f"{server.url}/ping")[2] == b"Ok.\n"
    assert http(f"{server.url}/")[2] == b"Ok.\n"
    status, headers, body = http(f"{server.url}/", data=b"SELECT 2 + 2 FORMAT JSONEachRow")
    assert (status, body) == (200, b'{"plus(2, 2)":4}\n')
    assert headers["X-ClickHouse-Format"] == "JSONEachRow"
    assert headers["Content-Type"].startswith("application/")
    assert headers["X-ClickHouse-Timezone"] and headers["X-ClickHouse-Query-Id"]
    status, headers, body = http(
        f"{server.url}/?query_id=my-q&default_format=JSONCompact", data=b"SELECT 1 AS a"
    )
    assert headers["X-ClickHouse-Query-Id"] == "my-q" and b'"data":' in body.replace(b" ", b"")
    assert http(f"{server.url}/nothing-here")[0] == 404


def test_bi_driver_style_post_with_database_and_header_auth(locked: ClickHouseProcess) -> None:
    headers = {"X-ClickHouse-User": "default", "X-ClickHouse-Key": PASSWORD}
    url = f"{locked.url}/?database=system&default_format=TabSeparatedWithNamesAndTypes"
    status, _, body = http(url, data=b"SELECT 'db' AS name FROM one", headers=headers)
    assert (status, body) == (200, b"name\nString\ndb\n")
    by_header = {**headers, "X-ClickHouse-Database": "system", "X-ClickHouse-Format": "JSONEachRow"}
    assert http(f"{locked.url}/", data=b"SELECT dummy FROM one", headers=by_header)[2] == b'{"dummy":0}\n'


def test_errors_have_clickhouse_shape(server: ClickHouseProcess) -> None:
    status, headers, body = http(f"{server.url}/?query={q('SELECT nosuch')}")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (404, "47")
    assert body.startswith(b"Code: 47. DB::Exception: ") and b"(UNKNOWN_IDENTIFIER) (version 26." in body
    status, headers, body = http(f"{server.url}/", data=b"SELEC 1")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, _ = http(f"{server.url}/", data=b"SELECT 1; DROP TABLE victims")
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (400, "62")
    status, headers, _ = http(f"{server.url}/?query={q('CREATE TABLE g (a Int8) ENGINE = Memory')}")
    assert headers["X-ClickHouse-Exception-Code"] == "164"  # GET is read-only, as in ClickHouse
    status, headers, _ = http(f"{server.url}/?query={q('INSERT INTO victims VALUES (1)')}")
    assert headers["X-ClickHouse-Exception-Code"] == "164"
    status, headers, _ = http(
        f"{server.url}/", data=b"INSERT INTO victims; DROP TABLE victims; INSERT INTO victims VALUES"
    )
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    with pytest.raises(DatabaseError) as caught:
        server.client().query("SELECT * FROM no_such_table")
    assert caught.value.code == 60 and "UNKNOWN_TABLE" in str(caught.value)


def test_error_codes_are_clickhouse_codes(server: ClickHouseProcess) -> None:
    names = ", ".join(f"errorCodeToName({code})" for code in CODES.values())
    assert server.client().query(f"SELECT [{names}]").result_rows[0][0] == list(CODES)


def test_password_is_required_on_every_request(locked: ClickHouseProcess) -> None:
    select = f"{locked.url}/?query=SELECT+1"
    status, headers, body = http(select)
    assert (status, headers["X-ClickHouse-Exception-Code"]) == (403, "516")
    assert b"AUTHENTICATION_FAILED" in body
    wrong = base64.b64encode(b"default:nope").decode()
    assert http(select, headers={"Authorization": f"Basic {wrong}"})[0] == 403
    assert http(f"{select}&user=default&password=nope")[0] == 403
    good = base64.b64encode(f"default:{PASSWORD}".encode()).decode()
    assert http(select, headers={"Authorization": f"Basic {good}"})[2] == b"1\n"
    assert http(select, headers={"X-ClickHouse-Key": PASSWORD})[2] == b"1\n"
    assert http(f"{select}&password={PASSWORD}")[2] == b"1\n"
    mixed = http(f"{select}&password={PASSWORD}", headers={"Authorization": f"Basic {good}"})
    assert mixed[1]["X-ClickHouse-Exception-Code"] == "516"
    assert http(f"{locked.url}/ping")[2] == b"Ok.\n"
    assert locked.client(password=PASSWORD).command("SELECT 3") == 3
    with pytest.raises(DatabaseError):
        locked.client(password="wrong")


def test_refuses_to_listen_beyond_loopback_without_a_password(tmp_path: Path) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAGPIE_")}
    env = {**clean, "MAGPIE_DATA_DIR": str(tmp_path), "MAGPIE_CLICKHOUSE_HOST": "0.0.0.0"}
    done = subprocess.run(
        [sys.executable, "-m", "magpie.cli", "clickhouse"], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "MAGPIE_CLICKHOUSE_PASSWORD" in lines[0] and "0.0.0.0" in lines[0]


def test_gzip_body_insert_with_the_statement_in_the_url(server: ClickHouseProcess) -> None:
    server.client().command("CREATE TABLE gz (a UInt32, b String) ENGINE = MergeTree ORDER BY a")
    data = b"".join(b'{"a": %d, "b": "row %d"}\n' % (i, i) for i in range(5000))
    url = f"{server.url}/?query={q('INSERT INTO gz FORMAT JSONEachRow')}"
    status, headers, _ = http(url, data=gzip.compress(data), headers={"Content-Encoding": "gzip"})
    assert status == 200 and '"written_rows":"5000"' in headers["X-ClickHouse-Summary"]
    status, _, _ = http(url, data=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert status == 400
    assert server.client().command("SELECT count(), sum(a) FROM gz") == ["5000", str(sum(range(5000)))]


def test_responses_are_compressed_when_asked(server: ClickHouseProcess) -> None:
    url = f"{server.url}/?query={q('SELECT number FROM numbers(1000)')}"
    status, headers, body = http(f"{url}&enable_http_compression=1", headers={"Accept-Encoding": "gzip"})
    assert (status, headers.get("Content-Encoding")) == (200, "gzip")
    assert gzip.decompress(body) == b"".join(b"%d\n" % i for i in range(1000))
    _, headers, body = http(f"{url}&enable_http_compression=0", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in headers and body.startswith(b"0\n1\n")
    client = server.client(compress="lz4")
    assert client.query("SELECT count() FROM numbers(100000)").result_rows == [(100000,)]


def test_large_results_stream_and_a_late_error_reaches_the_client(server: ClickHouseProcess) -> None:
    status, headers, body = http(f"{server.url}/?query={q('SELECT number FROM numbers(2000000)')}")
    assert status == 200 and "X-ClickHouse-Exception-Tag" in headers  # streamed, not buffered whole
    assert body.count(b"\n") == 2_000_000
    failing = "SELECT number, throwIf(number = 1500000, 'late boom') FROM numbers(2000000)"
    status, headers, body = http(f"{server.url}/?query={q(failing)}&max_block_size=10000")
    assert status == 200 and b"__exception__" in body and b"late boom" in body
    with pytest.raises(DatabaseError, match="late boom"):
        server.client().query(failing, settings={"max_block_size": 10000})


def test_settings_apply_to_their_request_only(server: ClickHouseProcess) -> None:
    probe = "SELECT getSetting('max_threads') = 3, getSetting('insert_deduplication_token')"
    client = server.client()
    assert client.query(
        probe, settings={"max_threads": 3, "insert_deduplication_token": "t1"}
    ).result_rows == [(True, "t1")]
    assert client.query(probe).result_rows == [(False, "")]
    assert http(f"{server.url}/?query={q(probe)}&max_threads=3")[2] == b"1\t\n"
    assert http(f"{server.url}/?query={q(probe)}")[2] == b"0\t\n"
    assert client.query("SELECT 1", settings={"readonly": 1}).result_rows == [(1,)]
    assert client.command("SELECT getSetting('readonly')") == 0


def test_sessions_keep_their_own_state(server: ClickHouseProcess) -> None:
    url = f"{server.url}/?session_id=s-1"
    assert http(url, data=b"SET max_threads = 1")[0] == 200
    assert http(url, data=b"CREATE TEMPORARY TABLE tmp (a UInt8)")[0] == 200
    assert http(url, data=b"INSERT INTO tmp VALUES (7)")[0] == 200
    assert http(url, data=b"SELECT getSetting('max_threads'), (SELECT a FROM tmp)")[2] == b"1\t7\n"
    assert http(f"{url}&max_threads=5", data=b"SELECT getSetting('max_threads')")[2] == b"5\n"
    assert http(url, data=b"SELECT getSetting('max_threads')")[2] == b"1\n"  # back to the session's value
    assert http(f"{server.url}/", data=b"SELECT getSetting('max_threads') = 1")[2] == b"0\n"
    missing = http(f"{server.url}/?session_id=nope&session_check=1", data=b"SELECT 1")
    assert missing[1]["X-ClickHouse-Exception-Code"] == "372"


def test_a_long_query_does_not_block_inserts(server: ClickHouseProcess) -> None:
    client = server.client()
    client.command("CREATE TABLE conc (i UInt32) ENGINE = MergeTree ORDER BY i")
    finished: dict[str, float] = {}

    def long_query() -> None:
        server.client().query(HEAVY, parameters={"n": 6_000_000_000})
        finished["long"] = time.monotonic()

    worker = threading.Thread(target=long_query)
    worker.start()
    time.sleep(0.5)
    for i in range(20):
        server.client().insert("conc", [[i]], column_names=["i"])
    finished["inserts"] = time.monotonic()
    worker.join()
    assert client.command("SELECT count() FROM conc") == 20
    assert finished["inserts"] < finished["long"], finished


def test_migrations_apply_through_the_server(server: ClickHouseProcess) -> None:
    target = ClickHouseTarget.from_url(f"{server.url}/magpie_through_http")
    assert migrate(target) == [m.version for m in load_migrations()]
    assert migrate(target) == []
    tables = server.client().query("SELECT name FROM system.tables WHERE database = 'magpie_through_http'")
    assert {"events", "sources", "schema_migrations"} <= {r[0] for r in tables.result_rows}


def test_sigterm_lets_a_running_query_finish(tmp_path: Path) -> None:
    process = ClickHouseProcess(tmp_path / "data").start()
    result: dict[str, object] = {}

    def long_query() -> None:
        result["rows"] = process.client().query(HEAVY, parameters={"n": 3_000_000_000}).result_rows

    worker = threading.Thread(target=long_query)
    worker.start()
    time.sleep(0.7)
    assert process.stop() == 0
    worker.join()
    assert len(result["rows"]) == 1  # type: ignore[arg-type]


def test_a_read_whose_client_disconnects_is_cancelled(server: ClickHouseProcess) -> None:
    endless = "SELECT sum(cityHash64(number)) AS abandoned_probe FROM numbers(1e12) SETTINGS max_threads = 1"
    for params in ("", "&wait_end_of_query=1"):  # streamed and buffered-whole reads alike
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(f"GET /?query={q(endless)}{params} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(1.0)
        sock.close()
        running = "SELECT count() FROM system.processes WHERE query LIKE '%abandoned_probe%' AND query NOT LIKE '%system.processes%'"
        deadline = time.monotonic() + 10
        while server.client().command(running) != 0:
            assert time.monotonic() < deadline, "the abandoned query is still running"
            time.sleep(0.2)
