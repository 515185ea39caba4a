"""What every request passes before a handler: the Host check, the API key and the body's declared size.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which would buffer streamed replies and
hide a client's disconnect from the handler).
"""

from __future__ import annotations

import hmac
import ipaddress
import json

MAX_BODY = 1 << 20  # bytes of a request body; past it, 413
# answered without a key: a load balancer's probe has none, and the page (no secret in it) asks for one
OPEN_PATHS = ("/health", "/")


def host_name(host: str) -> str:
    """The name in a Host header, without its port: "[::1]:8000" -> "::1", "localhost:80" -> "localhost"."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_address(host: str) -> bool:
    """localhost, or an IP address in 127.0.0.0/8 or ::1 (a name like 127.0.0.1.example.com is not one)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_loopback_name(host: str) -> bool:
    name = host_name(host)
    return is_loopback_address(name) or name.endswith(".localhost")


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
    """Refuses a foreign Host while bound to loopback (403), a missing or wrong key (401), a body declared
    over MAX_BODY (413). Handlers count the bytes of bodies sent without a length."""

    def __init__(self, app, *, api_key: str | None = None, loopback: bool = True):
        self.app, self.api_key, self.loopback = app, api_key, loopback

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        refusal = self._refusal(scope["path"], scope["method"], headers)
        if refusal is None:
            return await self.app(scope, receive, send)
        status, message, kind, code = refusal
        if scope["path"].startswith("/api/"):
            body = {"error": message}
        else:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
        data = json.dumps(body).encode()
        extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *extra]})  # fmt: skip
        await send({"type": "http.response.body", "body": data})

    def _refusal(self, path: str, method: str, headers: dict[bytes, bytes]) -> tuple[int, str, str, str] | None:
        host = headers.get(b"host", b"").decode("latin-1")
        if self.loopback and not is_loopback_name(host):
            return 403, f"Host {host!r} is not a loopback name; this server answers only local names", \
                "permission_error", "forbidden_host"  # fmt: skip
        if self.api_key and path not in OPEN_PATHS and method != "OPTIONS" and not key_matches(headers, self.api_key):
            return 401, "a valid API key is required: send Authorization: Bearer KEY or x-api-key: KEY", \
                "authentication_error", "invalid_api_key"  # fmt: skip
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > MAX_BODY:
            return 413, f"the request body is over {MAX_BODY:,} bytes; send a shorter prompt", \
                "invalid_request_error", "body_too_large"  # fmt: skip
        return None
