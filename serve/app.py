"""The server's Starlette app: the routes, the middleware and errors as JSON.

`default_routes()` lists every endpoint; a new one is one more line there: its handler (in a route module)
reads the models from `request.app.state.models` (`Models.get(name)`), the body with `read_json`, and
generates with `Generation(served, fields, request)`, all from common.py.
A path that must answer without the API key goes in security.OPEN_PATHS.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import ollama_api, openai_api, page
from .common import ApiError, Models, error_body
from .security import Guard, Limits


async def health(request: HttpRequest) -> Response:
    models: Models = request.app.state.models
    if models.failure:
        return JSONResponse({"status": "error", "message": models.failure}, status_code=503)
    if not models.ready:
        return JSONResponse({"status": "loading"}, status_code=503)
    return JSONResponse({"status": "ok"})


async def api_error(request: HttpRequest, e: ApiError) -> Response:
    return JSONResponse(error_body(request.url.path, e), status_code=e.status, headers=e.headers)


async def http_error(request: HttpRequest, e: HTTPException) -> Response:
    kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
    return await api_error(
        request, ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", kind=kind)
    )


def default_routes() -> list[Route]:
    return [Route("/health", health, methods=["GET"]), *openai_api.ROUTES, *ollama_api.ROUTES, *page.ROUTES]


def build_app(
    models: Models,
    *,
    api_key: str | None = None,
    loopback: bool = True,
    cors_origin: str | None = None,
    routes: list[Route] | None = None,
    lifespan: Callable | None = None,
    limits: Limits | None = None,
) -> Starlette:
    """The app over models. loopback: refuse Host headers that are not loopback names (DNS rebinding);
    limits: the body's deadline (the header's and the connection limit are server.py's, from the same Limits)."""
    middleware = []
    if cors_origin:  # outermost, so a browser's preflight is answered before the key is asked for
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=[cors_origin],
                allow_methods=["GET", "POST"],
                allow_headers=["authorization", "content-type", "x-api-key"],
            )
        )
    middleware.append(Middleware(Guard, api_key=api_key, loopback=loopback, cors_origin=cors_origin, limits=limits))
    app = Starlette(
        routes=routes if routes is not None else default_routes(),
        middleware=middleware,
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.models = models
    return app
