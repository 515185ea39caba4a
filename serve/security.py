"""What every request passes before a handler: the Host check (name and port), the Origin check, the API key,
a POST's declared type and size, and a deadline on its body. The header deadline and the connection limit
live in server.py, below the app, where uvicorn reads the bytes.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which would buffer streamed replies and
hide a client's disconnect from the handler).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import uuid
from dataclasses import dataclass

MAX_BODY = 1 << 20  # bytes of a request body; past it, 413


@dataclass(frozen=True)
class Limits:
    """What a client may hold of the server. Each refusal is an answer or a closed socket, never a wait."""

    header_seconds: float = 10.0  # from a connection's first byte (or its last reply) to a request's whole header
    body_seconds: float = 30.0  # from the header to the end of the body; past it, 408
    keep_alive_seconds: float = 5.0  # an idle connection between requests is closed after this
    max_connections: int = 100  # open connections; a request arriving past it gets uvicorn's plain 503


class BodyTimeout(Exception):
    """The body did not arrive within Limits.body_seconds (the handler answers 408)."""


LINGER_BODY = 8 * MAX_BODY  # a refused body is read off up to this many bytes before the answer


async def read_off_body(receive, size: int = 0) -> None:
    """Read and drop the rest of a body being refused (up to LINGER_BODY bytes in all, `size` of them read
    already), so the refusal goes out after the client's last byte. A socket closed on bytes it has not read
    is reset, and a reset can throw away the answer before the client reads it. A late or departed client
    gets its answer as it stands: BodyTimeout ends the reading, and so does a disconnect message."""
    while size <= LINGER_BODY:
        try:
            message = await receive()
        except BodyTimeout:
            return
        if message["type"] != "http.request":
            return
        size += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# answered without a key: a load balancer's probe has none, and the page (no secret in it) asks for one
OPEN_PATHS = ("/health", "/")


def split_host(host: str) -> tuple[str, str | None]:
    """A Host header's name and port: "[::1]:8000" -> ("::1", "8000"), "localhost" -> ("localhost", None)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host, None
        rest = host[end + 1 :]
        return host[1:end], rest[1:] if rest.startswith(":") else (rest or None)
    if host.count(":") == 1:
        name, port = host.split(":")
        return name, port
    return host, None


def host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "localhost:80" -> "localhost"."""
    return split_host(host)[0]


def port_is_valid(port: str | None) -> bool:
    return port is None or (port.isascii() and port.isdigit() and 0 < int(port) < 65_536)


def is_loopback_address(host: str) -> bool:
    """localhost, or an IP address in 127.0.0.0/8 or ::1 (a name like 127.0.0.1.example.com is not one)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_name(host: str) -> bool:
    """A loopback name with, if any, a port that is a number ("localhost:evil" is not one)."""
    name, port = split_host(host)
    return (is_loopback_address(name) or name.endswith(".localhost")) and port_is_valid(port)


def is_json_type(content_type: bytes) -> bool:
    """Whether a Content-Type says JSON: "application/json", with or without parameters such as a charset."""
    return content_type.split(b";", 1)[0].strip().lower() == b"application/json"


def key_matches(headers: dict[bytes, bytes], api_key: str) -> bool:
    """Whether the request carries the key, as `Authorization: Bearer KEY` or `x-api-key: KEY`, compared in
    constant time (no timing tells how much of a guess was right)."""
    expected = api_key.encode()
    given = headers.get(b"x-api-key", b"")
    auth = headers.get(b"authorization", b"")
    if auth[:7].lower() == b"bearer ":
        given = auth[7:].strip()
    return hmac.compare_digest(given, expected)


class Guard:
    """Refuses a foreign Host while bound to loopback (403), an Origin that is neither this server's nor the
    --cors-origin (403: a web page the user visits must not drive the model), a missing or wrong key (401),
    a POST not declared application/json (415: a page's "simple" form or text/plain request), a body
    declared over MAX_BODY (413). Handlers count the bytes of bodies sent without a length, and the body
    must arrive within limits.body_seconds (read_json turns BodyTimeout into 408).

    Each request gets an id (scope["state"]["request_id"], the x-request-id header of its reply) that the
    log's lines about it name."""

    def __init__(
        self,
        app,
        *,
        api_key: str | None = None,
        loopback: bool = True,
        cors_origin: str | None = None,
        limits: Limits | None = None,
    ):
        self.app, self.api_key, self.loopback, self.cors_origin = app, api_key, loopback, cors_origin
        self.limits = limits or Limits()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:12]
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        headers = dict(scope["headers"])
        refusal = self._refusal(scope["path"], scope["method"], headers)
        if refusal is None:
            return await self.app(scope, self._body_in_time(receive), send_with_id)
        status, message, kind, code = refusal
        length = headers.get(b"content-length", b"0")
        if not (length.isdigit() and int(length) > LINGER_BODY):  # past it, reading off part would not save the answer
            await read_off_body(self._body_in_time(receive))
        if scope["path"].startswith("/api/"):
            body = {"error": message}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        data = json.dumps(body).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        if status == 413:  # past LINGER_BODY the body is left unread: the connection ends with the answer
            extra.append((b"connection", b"close"))
        await send_with_id(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()),
                    *extra,
                ],
            }
        )
        await send_with_id({"type": "http.response.body", "body": data})

    def _body_in_time(self, receive):
        """receive, with the body's messages due by the deadline (BodyTimeout past it); after the body's
        last one, receive as it is (a stream's disconnect watch must wait as long as the stream lasts)."""
        deadline = asyncio.get_running_loop().time() + self.limits.body_seconds
        body_done = False

        async def receive_in_time():
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - asyncio.get_running_loop().time()))
            except TimeoutError:
                raise BodyTimeout from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        return receive_in_time

    def _refusal(self, path: str, method: str, headers: dict[bytes, bytes]) -> tuple[int, str, str, str] | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if self.loopback and not is_loopback_name(host):
            return (
                403,
                f"Host {clipped(host)} is not a loopback name and port; this server answers only local names",
                "permission_error",
                "forbidden_host",
            )
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_allowed(origin.decode("latin-1"), host):
            return (
                403,
                f"Origin {clipped(origin.decode('latin-1'))} may not call this server (it is neither this "
                "server's own page nor --cors-origin)",
                "permission_error",
                "forbidden_origin",
            )
        if self.api_key and path not in OPEN_PATHS and method != "OPTIONS" and not key_matches(headers, self.api_key):
            return (
                401,
                "a valid API key is required: send Authorization: Bearer KEY or x-api-key: KEY",
                "authentication_error",
                "invalid_api_key",
            )
        if method == "POST" and not is_json_type(headers.get(b"content-type", b"")):
            return (
                415,
                "a POST body must be sent as Content-Type: application/json",
                "invalid_request_error",
                "unsupported_media_type",
            )
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            return (
                413,
                f"the request body is over {MAX_BODY:,} bytes; send a shorter prompt",
                "invalid_request_error",
                "body_too_large",
            )
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        """The page this server serves (its origin names the Host asked for), or the one --cors-origin names."""
        own = host.strip().lower()
        return origin.lower() in (f"http://{own}", f"https://{own}") or (
            self.cors_origin is not None and origin.rstrip("/") == self.cors_origin.rstrip("/")
        )


def clipped(value: object, most: int = 80) -> str:
    """repr(value), cut to `most` characters: an error names what it was sent without echoing a megabyte."""
    shown = repr(value)
    return shown if len(shown) <= most else shown[: most - 1] + "…"
