"""The HTTP protocol Magpie serves with: uvicorn's httptools protocol plus deadlines for slow clients.

A connection moves through phases, each with its own deadline:

- head: from the connect (or the first byte of the next request) until the request head is complete.
  A head not complete in time is answered 408 and closed (slowloris); a silent connection is just closed.
  A head larger than `max_header_bytes` is answered 431 and closed, before it is buffered any further.
- body: from the end of the head until the whole body has arrived, else 408 and close.
- idle: between a response and the next request, uvicorn's own keep-alive timer (`timeout_keep_alive`).

An error answer (408, 431) is followed by a bounded lingering close, as nginx does: the write side is
shut (FIN after the answer), whatever the client still sends is read and dropped for up to
`LINGER_S`, then the socket closes. Closing at once with unread input makes the kernel send a reset,
which can arrive before the client has read the answer and destroy it.

And one more for slow readers: a response stalled because the client stops reading (the write buffer
stays over its high-water mark) for `send_timeout_s` is abandoned and the connection aborted, so a
client cannot pin a request task and megabytes of buffers by pipelining requests and never reading.

The fast path stays cheap: one timer handle per connection, moved lazily. A phase change only writes
the new deadline; when the timer fires early it re-arms for what is left. The clock never blames the
client while the server holds the connection (reading paused behind a pipelined request, or the app
not yet reading the body): then the deadline starts again.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import httptools
import uvicorn
from uvicorn._types import ASGI3Application
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from magpie.settings import Settings

Phase = Literal["head", "body"]
_SLACK_S = 0.001  # a timer firing this close to its deadline counts as on time
LINGER_S = 2.0  # how long an answered-and-closing connection keeps draining the client's input


@dataclass(frozen=True)
class ClientLimits:
    header_timeout_s: float = 10
    body_timeout_s: float = 30
    send_timeout_s: float = 30
    max_header_bytes: int = 16384


class _HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing a request head over the cap."""


def plain_response(status: int) -> bytes:
    """A complete `connection: close` response whose body is the status phrase."""
    phrase = http.HTTPStatus(status).phrase.encode()
    return b"".join(
        [
            b"HTTP/1.1 %d %s\r\n" % (status, phrase),
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(phrase),
            b"connection: close\r\n\r\n",
            phrase,
        ]
    )


class SlowClientProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with header and body deadlines and a request-head size cap."""

    limits: ClassVar[ClientLimits] = ClientLimits()

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._phase: Phase | None = None
        self._deadline = 0.0  # loop time at which the current phase expires
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._messages = 0  # requests begun on this connection
        self._head_begun = False  # bytes of the current request head have arrived
        self._head_parsed = 0  # bytes of URL and headers the parser has handed over
        self._head_streamed = 0  # bytes of chunks that were wholly inside the current head
        self._too_large = False
        self._send_timer: asyncio.TimerHandle | None = None
        self._running: RequestResponseCycle | None = None  # the request whose app task runs
        self._linger_timer: asyncio.TimerHandle | None = None  # set while draining before close

    # --- deadlines ---------------------------------------------------------------------------
    def _timeout_s(self, phase: Phase) -> float:
        return self.limits.header_timeout_s if phase == "head" else self.limits.body_timeout_s

    def _start(self, phase: Phase) -> None:
        self._phase = phase
        self._deadline = self.loop.time() + self._timeout_s(phase)
        if self._timer is None or self._deadline < self._timer_at:
            self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = self._deadline
        self._timer = self.loop.call_at(self._deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._phase is None or self.transport.is_closing():
            return
        now = self.loop.time()
        if self._deadline - now > _SLACK_S:
            self._schedule()
        elif self._server_holds_connection():
            self._deadline = now + self._timeout_s(self._phase)
            self._schedule()
        else:
            self._expire(self._phase)

    def _server_holds_connection(self) -> bool:
        """True while the client cannot make progress because of us, not because of itself."""
        if self.flow.read_paused or self.pipeline:
            return True
        earlier = self.cycle
        return self._phase == "head" and earlier is not None and not earlier.response_complete

    def _expire(self, phase: Phase) -> None:
        self.logger.debug("%s: request %s not received in time; closing", self.client, phase)
        if phase == "head":
            self._close_with(408 if self._head_begun else None)
            return
        cycle = self.cycle
        self._close_with(None if cycle.response_started else 408)
        cycle.disconnected = True  # the app's receive() answers http.disconnect from now on
        cycle.message_event.set()

    def _close_with(self, status: int | None) -> None:
        self._phase = None
        if status is None or not self.transport.can_write_eof():
            if status is not None:
                self.transport.write(plain_response(status))
            self.transport.close()
            return
        self.transport.write(plain_response(status))
        self.transport.write_eof()  # the answer, then FIN; reading goes on (and is dropped) a while
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_S, self.transport.close)

    def _reject_head(self) -> None:
        """431 and close; no answer while the previous response is unfinished (it would take its place)."""
        earlier = self.cycle
        self._close_with(431 if earlier is None or earlier.response_complete else None)

    # --- protocol and parser callbacks ----------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start("head")

    def connection_lost(self, exc: Exception | None) -> None:
        self._phase = None
        for timer in (self._timer, self._send_timer, self._linger_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._send_timer = self._linger_timer = None
        running = self._running
        if running is not None and running is not self.cycle and not running.response_complete:
            # uvicorn tells only the newest request; one running ahead of pipelined ones must hear too,
            # or its pending send() writes to the closed transport.
            running.disconnected = True
            running.message_event.set()
        super().connection_lost(exc)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._running = cycle
        super()._start_asgi_task(cycle, app)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._send_timer is None:
            self._send_timer = self.loop.call_later(self.limits.send_timeout_s, self._on_send_stalled)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None

    def _on_send_stalled(self) -> None:
        self._send_timer = None
        if self.flow.write_paused:
            self.logger.debug("%s: response not read in time; aborting", self.client)
            self.transport.abort()  # close() would wait for the unread buffer to drain

    def data_received(self, data: bytes) -> None:
        if self._linger_timer is not None:
            return  # answered and closing: input is drained and dropped
        self._unset_keepalive_if_required()
        messages, in_head = self._messages, self._phase == "head"
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self._too_large:
                self._reject_head()
                return
            self.logger.warning("Invalid HTTP request received.")
            self.send_400_response("Invalid HTTP request received.")
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        if in_head and self._phase == "head" and self._messages == messages:
            self._head_streamed += len(data)
            if self._head_streamed > self.limits.max_header_bytes:
                self._reject_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._messages += 1
        self._head_begun, self._head_parsed, self._head_streamed = True, 0, 0
        if self._phase != "head":
            self._start("head")

    def _count_head(self, size: int) -> None:
        self._head_parsed += size
        if self._head_parsed > self.limits.max_header_bytes:
            self._too_large = True
            raise _HeadTooLarge

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            self._phase = None  # the WebSocket protocol takes the connection over
        else:
            self._start("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._phase, self._head_begun = None, False


def protocol_class(limits: ClientLimits) -> type[SlowClientProtocol]:
    """A SlowClientProtocol subclass bound to `limits` (uvicorn builds protocols from a class)."""

    class LimitedProtocol(SlowClientProtocol):
        pass

    LimitedProtocol.limits = limits
    return LimitedProtocol


def client_limits(settings: Settings) -> ClientLimits:
    return ClientLimits(
        header_timeout_s=settings.header_timeout_s,
        body_timeout_s=settings.body_timeout_s,
        send_timeout_s=settings.send_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )


def uvicorn_config(settings: Settings, app: Any, **overrides: Any) -> uvicorn.Config:
    """The uvicorn.Config Magpie serves `app` with; `overrides` replace any keyword (e.g. `fd=`).

    No `limit_concurrency`: uvicorn counts idle and slow connections against it and answers healthy
    requests 503, which hands a slow-client attack exactly the denial it wants. The deadlines are
    the defence; the process's open-file limit bounds the connections.
    """
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": protocol_class(client_limits(settings)),
        "lifespan": "on",
        "interface": "asgi3",
        "log_level": settings.log_level,
        "access_log": False,
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": settings.keepalive_timeout_s,
        "proxy_headers": False,
        "server_header": False,
    }
    return uvicorn.Config(app, **{**options, **overrides})
