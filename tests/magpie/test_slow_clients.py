"""Slow and idle clients against the real `magpie serve` (magpie/http_protocol.py): header and body
deadlines, idle keep-alive reaping, the request-head size cap, and healthy latency under 200 slow
connections, and slow readers. Deadlines are short here (2 s head, body and send, 1 s idle) so the tests stay quick."""

from __future__ import annotations

import base64
import itertools
import resource
import select
import socket
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from magpie.settings import ConfigError, load_settings
from tests.server import ServerProcess

HEAD_S, BODY_S, SEND_S, IDLE_S = 2, 2, 2, 1


@pytest.fixture(scope="module", autouse=True)
def _enough_open_files() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(
        tmp_path_factory.mktemp("slow") / "data",
        MAGPIE_HEADER_TIMEOUT_S=str(HEAD_S),
        MAGPIE_BODY_TIMEOUT_S=str(BODY_S),
        MAGPIE_SEND_TIMEOUT_S=str(SEND_S),
        MAGPIE_KEEPALIVE_TIMEOUT_S=str(IDLE_S),
        MAGPIE_MAX_HEADER_BYTES="16384",
    ).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log(), process.log()[-3000:]


@pytest.fixture(scope="module")
def write_key(strict: ServerProcess) -> str:
    return str(strict.create_source("slow-clients")["write_key"])


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAGPIE_HEADER_TIMEOUT_S", "0"),
        ("MAGPIE_BODY_TIMEOUT_S", "soon"),
        ("MAGPIE_SEND_TIMEOUT_S", "-1"),
        ("MAGPIE_KEEPALIVE_TIMEOUT_S", "7200"),
        ("MAGPIE_MAX_HEADER_BYTES", "100"),
    ],
)
def test_bad_limits_are_configuration_errors(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings({variable: value})


def _auth(write_key: str) -> bytes:
    return b"Authorization: Basic " + base64.b64encode(f"{write_key}:".encode()) + b"\r\n"


def _track_body() -> bytes:
    return orjson.dumps({"event": "Slow", "userId": "u1", "messageId": str(uuid.uuid4())})


def _track_head(write_key: str, length: int) -> bytes:
    return (
        b"POST /v1/track HTTP/1.1\r\nHost: magpie\r\nContent-Type: application/json\r\n"
        + _auth(write_key)
        + b"Content-Length: %d\r\n\r\n" % length
    )


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def _drip(sock: socket.socket, payload: bytes, interval_s: float, give_up_s: float) -> tuple[bytes, float]:
    """Send `payload` one byte per `interval_s`, forever; return what came back and when the server closed
    (monotonic time), or fail if it is still open after `give_up_s`."""
    received, give_up_at = b"", time.monotonic() + give_up_s
    for byte in itertools.cycle(payload):
        try:
            sock.send(bytes([byte]))
            if select.select([sock], [], [], interval_s)[0]:
                chunk = sock.recv(65536)
                if not chunk:
                    return received, time.monotonic()
                received += chunk
        except (BrokenPipeError, ConnectionResetError):
            return received, time.monotonic()
        assert time.monotonic() < give_up_at, f"still open after {give_up_s}s; got {received[:200]!r}"
    raise AssertionError("unreachable")


def _wait_closed(sock: socket.socket, give_up_s: float) -> tuple[bytes, float]:
    """Read until the server closes; return what came and when, or fail after `give_up_s`."""
    received, give_up_at = b"", time.monotonic() + give_up_s
    while (left := give_up_at - time.monotonic()) > 0:
        if select.select([sock], [], [], left)[0]:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return received, time.monotonic()
            received += chunk
    raise AssertionError(f"still open after {give_up_s}s; got {received[:200]!r}")


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response (Content-Length framed) from a keep-alive connection: status and body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed mid-response: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(v) for k, _, v in (h.partition(b":") for h in lines[1:]) if k.lower() == b"content-length"
    )
    while len(rest) < length:
        rest += sock.recv(65536)
    assert len(rest) == length, "more bytes than one response"
    return int(lines[0].split()[1]), rest


def test_slowloris_head_is_answered_408_and_closed_after_the_header_deadline(strict: ServerProcess) -> None:
    sock = _connect(strict)
    started = time.monotonic()
    sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: magpie\r\n")
    received, closed_at = _drip(sock, b"X-Slow: " + b"a" * 64, interval_s=0.5, give_up_s=HEAD_S + 6)
    assert HEAD_S - 0.2 <= closed_at - started <= HEAD_S + 3
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_the_408_is_not_destroyed_by_a_client_that_keeps_sending(strict: ServerProcess) -> None:
    """Closing with the client's bytes still arriving makes the kernel answer them with a reset, which
    can wipe the 408 before it is read; the server shuts its write side and drains for a while instead."""
    sock = _connect(strict)
    sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: magpie\r\nX-Slow: ")
    time.sleep(HEAD_S + 0.5)  # the 408 is waiting, unread, in our receive buffer
    for _ in range(4):
        sock.sendall(b"a" * 4096)  # would raise BrokenPipe/ConnectionReset after a plain close
        time.sleep(0.1)
    received, _ = _wait_closed(sock, give_up_s=5)
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_a_silent_connection_is_closed_after_the_header_deadline(strict: ServerProcess) -> None:
    sock = _connect(strict)
    started = time.monotonic()
    received, closed_at = _wait_closed(sock, give_up_s=HEAD_S + 6)
    assert received == b""  # nothing asked, nothing answered
    assert HEAD_S - 0.2 <= closed_at - started <= HEAD_S + 3


def test_a_trickled_body_is_answered_408_after_the_body_deadline(
    strict: ServerProcess, write_key: str
) -> None:
    sock = _connect(strict)
    sock.sendall(_track_head(write_key, 10_000))
    started = time.monotonic()
    received, closed_at = _drip(sock, b'{"event": "x", ', interval_s=0.5, give_up_s=BODY_S + 6)
    assert BODY_S - 0.2 <= closed_at - started <= BODY_S + 3
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_a_body_in_pieces_within_the_deadline_is_accepted(strict: ServerProcess, write_key: str) -> None:
    body = _track_body()
    with _connect(strict) as sock:
        sock.sendall(_track_head(write_key, len(body)))
        for start in range(0, len(body), len(body) // 3 + 1):
            time.sleep(BODY_S / 5)
            sock.sendall(body[start : start + len(body) // 3 + 1])
        assert _read_response(sock)[0] == 200


def test_an_idle_keep_alive_connection_is_reaped(strict: ServerProcess) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: magpie\r\n\r\n")
        assert _read_response(sock)[0] == 200
        answered = time.monotonic()
        received, closed_at = _wait_closed(sock, give_up_s=IDLE_S + 6)
    assert received == b""
    assert IDLE_S - 0.2 <= closed_at - answered <= IDLE_S + 3


def test_keep_alive_and_pipelined_requests_outlive_the_deadlines(
    strict: ServerProcess, write_key: str
) -> None:
    """Each request gets its own deadlines: a connection busy for longer than them in total stays up."""
    with _connect(strict) as sock:
        started = time.monotonic()
        while time.monotonic() - started < HEAD_S + BODY_S:
            body = _track_body()
            sock.sendall(_track_head(write_key, len(body)) + body)
            assert _read_response(sock)[0] == 200
            time.sleep(IDLE_S / 2)
        bodies = [_track_body() for _ in range(3)]
        sock.sendall(b"".join(_track_head(write_key, len(b)) + b for b in bodies))
        assert [_read_response(sock)[0] for _ in bodies] == [200, 200, 200]


def test_a_client_that_stops_reading_is_dropped_after_the_send_deadline(strict: ServerProcess) -> None:
    """1000 pipelined requests for the 9 KB tag, nothing read: the stalled responses are abandoned."""
    count = 1000
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", strict.port))
        sock.sendall(b"GET /tag.js HTTP/1.1\r\nHost: magpie\r\n\r\n" * count)
        time.sleep(SEND_S + 2)
        received, _ = _wait_closed(sock, give_up_s=30)
    assert 0 < received.count(b"HTTP/1.1 200 ") < count


def test_a_64_kib_header_is_answered_431(strict: ServerProcess) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: magpie\r\nX-Big: " + b"a" * 65536 + b"\r\n\r\n")
        received, _ = _wait_closed(sock, give_up_s=5)
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]


def test_a_streamed_oversized_head_is_cut_at_the_cap(strict: ServerProcess) -> None:
    """The head is refused once it passes the cap, not buffered until it ends."""
    with _connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: magpie\r\nX-Big: ")
        sent, received = 0, b""
        while sent < 1 << 20 and not received:
            sock.sendall(b"a" * 4096)
            sent += 4096
            if select.select([sock], [], [], 0.05)[0]:
                received = sock.recv(65536)
    assert received.startswith(b"HTTP/1.1 431 "), received[:200]
    assert sent <= 32768


def test_a_head_under_the_cap_is_served(strict: ServerProcess) -> None:
    response = httpx.get(strict.url + "/healthz", headers={"X-Big": "a" * 12_000})
    assert response.status_code == 200


def test_malformed_requests_are_still_400(strict: ServerProcess) -> None:
    with _connect(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost magpie\r\n\r\n")
        received, _ = _wait_closed(sock, give_up_s=5)
    assert received.startswith(b"HTTP/1.1 400 "), received


class Slowloris(threading.Thread):
    """`count` connections that each send a partial head and then one more byte per 0.5 s."""

    def __init__(self, port: int, count: int) -> None:
        super().__init__(daemon=True)
        self.sockets = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            sock.sendall(b"POST /v1/track HTTP/1.1\r\nHost: magpie\r\nX-Slow: ")
            sock.setblocking(False)
        self.opened = time.monotonic()
        self.closed: dict[socket.socket, tuple[float, bytes]] = {}
        self.stop = threading.Event()

    def open_count(self) -> int:
        return len(self.sockets) - len(self.closed)

    def run(self) -> None:
        while not self.stop.is_set() and self.open_count():
            live = [s for s in self.sockets if s not in self.closed]
            for sock in live:
                try:
                    sock.send(b"a")
                except BlockingIOError:
                    continue
                except OSError:
                    self.closed.setdefault(sock, (time.monotonic(), b""))
            for sock in select.select(live, [], [], 0.5)[0]:
                try:
                    self.closed.setdefault(sock, (time.monotonic(), sock.recv(65536)))
                except OSError:
                    self.closed.setdefault(sock, (time.monotonic(), b""))

    def close(self) -> None:
        self.stop.set()
        self.join(5)
        for sock in self.sockets:
            sock.close()


def _latencies_ms(client: httpx.Client, write_key: str, count: int) -> list[float]:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    out = []
    for _ in range(count):
        body = _track_body()
        started = time.perf_counter()
        response = client.post(
            "/v1/track", content=body, headers={**auth, "Content-Type": "application/json"}
        )
        out.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def test_healthy_latency_holds_while_200_slow_connections_are_open(tmp_path: Path) -> None:
    """Default deadlines (10 s head): 200 slowloris connections stay open while we measure, then go."""
    server = ServerProcess(tmp_path / "data").start()
    try:
        write_key = str(server.create_source("latency")["write_key"])
        with httpx.Client(base_url=server.url, timeout=10) as client:
            _latencies_ms(client, write_key, 20)  # warm up
            quiet = _latencies_ms(client, write_key, 200)
            slow = Slowloris(server.port, 200)
            slow.start()
            try:
                time.sleep(1)
                loaded = _latencies_ms(client, write_key, 200)
                held = slow.open_count()
                slow.join(timeout=10 + 6 - (time.monotonic() - slow.opened))
                cut = [data for _, data in slow.closed.values()]
            finally:
                slow.close()
        print(
            f"\n/v1/track ms: quiet p50={_p(quiet, 50):.2f} p99={_p(quiet, 99):.2f}; "
            f"with 200 slow connections p50={_p(loaded, 50):.2f} p99={_p(loaded, 99):.2f}"
        )
        assert held == 200, "the slow connections were cut before the header deadline"
        assert _p(loaded, 99) < 1000
        assert len(cut) == 200 and all(data.startswith(b"HTTP/1.1 408 ") for data in cut)
    finally:
        server.stop()
