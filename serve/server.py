"""uvicorn as this app runs under it: a deadline on each request's header and a limit on open connections.

uvicorn's own keep-alive timer starts only after a first reply, so a client that connects and sends nothing,
or sends its header a byte a second (slowloris), would hold its connection for ever. The protocol here
closes a connection whose request header is not whole within Limits.header_seconds of the connection (or
of its last reply); the body's deadline is the Guard's (security.py), where the app reads it.
"""

from __future__ import annotations

import asyncio

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .security import Limits


def deadline_protocol(header_seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing a connection whose request header is late."""

    class HeaderDeadlineProtocol(H11Protocol):
        header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.arm_header_timer()

        def arm_header_timer(self) -> None:
            self.disarm_header_timer()
            self.header_timer = self.loop.call_later(header_seconds, self.header_late)

        def disarm_header_timer(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
                self.header_timer = None

        def header_late(self) -> None:
            self.header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()  # nothing was answered: no request was ever whole

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # a whole header came: the body's deadline takes over
                self.disarm_header_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self.arm_header_timer()  # the next request on this connection gets its own deadline

        def connection_lost(self, exc) -> None:
            self.disarm_header_timer()
            super().connection_lost(exc)

    return HeaderDeadlineProtocol


def server_config(app, limits: Limits, **options) -> uvicorn.Config:
    """uvicorn's Config for app under limits; options go to uvicorn as they are (log_level, the graceful timeout)."""
    return uvicorn.Config(
        app,
        http=deadline_protocol(limits.header_seconds),
        limit_concurrency=limits.max_connections,
        timeout_keep_alive=limits.keep_alive_seconds,
        **options,
    )
