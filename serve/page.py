"""The page at `/` (static/index.html, shipped as package data) and the two calls only it makes:
POST /api/inspect, the attention and logit lens at one position, and POST /api/score, the surprisal
of a pasted text. The numbers come from model/inspection.py, the same as `scratchgpt inspect|score --json`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from importlib.resources import files

import anyio
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..core.errors import ScratchGPTError
from ..model.inspection import inspect_text, score_text
from ..model.logprobs import MAX_TOP_LOGPROBS
from ..tokenizers import Tokenizer
from .common import RETRY_AFTER_SECONDS, ApiError, ServedModel, chat_text, numeric_field, read_json

LENS_TOP = 5  # tokens per logit-lens row, as `scratchgpt inspect` shows
# A scored text's reply holds every token with its alternatives (about 60 bytes each): a 1 MiB body
# could ask for 50 MB of JSON and half a minute of CPU. The page scores at most MAX_SCORE_TOKENS tokens and
# MAX_SCORE_ENTRIES tokens-and-alternatives (tokens x (1 + top)): a reply of a few MB at most. Past them
# the page is the wrong tool (`scratchgpt score` is the right one).
MAX_SCORE_TOKENS = 10_000
MAX_SCORE_ENTRIES = 50_000


def page_html() -> str:
    """The page, read at each request (it is small), so an edited file shows on reload."""
    return (files("scratchgpt.serve") / "static" / "index.html").read_text(encoding="utf-8")


def content_security_policy(html: str) -> str:
    """What the browser may do on the page: run only its own inline script (named by its hash), talk only
    to this server, load nothing from another host, and not be framed by another site."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def window_tail(tokenizer: Tokenizer, text: str, block_size: int) -> tuple[str, int]:
    """The end of text that fits the model's window, and how many tokens before it were left out.

    A scored text may be longer than the window; the model never saw more than a window at once, so
    the attention at its far end is over the last block_size tokens. Re-encoding the decoded tail can
    merge differently at the cut (BPE), so characters come off its front until it fits.
    """
    ids = tokenizer.encode(text)
    if len(ids) <= block_size:
        return text, 0
    tail = tokenizer.decode(ids[-block_size:])
    while len(tokenizer.encode(tail)) > block_size:
        tail = tail[1:]
    return tail, len(ids) - len(tokenizer.encode(tail))


def inspect_window(model, tokenizer: Tokenizer, text: str) -> dict:
    """inspect_text's object for the last window of text, with "cropped": the tokens left out before it."""
    tail, cropped = window_tail(tokenizer, text, model.config.block_size)
    return {**inspect_text(model, tokenizer, tail, top=LENS_TOP), "cropped": cropped}


async def page(request: HttpRequest) -> Response:
    html = page_html()
    headers = {
        "Content-Security-Policy": content_security_policy(html),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return Response(html, media_type="text/html; charset=utf-8", headers=headers)


def as_json(work: Callable, *args) -> Response:
    """work(*args)'s object as a JSON response, rendered where it runs (JSONResponse renders as it is built,
    here in a worker thread): a reply of megabytes must not be rendered on the event loop, which every
    other client waits on."""
    return JSONResponse(work(*args))


async def off_the_loop(request: HttpRequest, work: Callable, *args) -> Response:
    """work(*args) as JSON, computed and rendered in a worker thread, one such call at a time for the whole
    server (the engines' own threads keep decoding beside it); while one runs, another gets 503 with
    Retry-After at once, as a full engine answers. A ScratchGPTError it raises (an empty text, say) is a 400."""
    state = request.app.state
    if getattr(state, "page_limiter", None) is None:
        state.page_limiter = anyio.CapacityLimiter(1)
    if state.page_limiter.available_tokens < 1:
        raise ApiError(
            503,
            "the server is busy with another page request; retry shortly",
            kind="server_error",
            code="server_busy",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        return await anyio.to_thread.run_sync(as_json, work, *args, limiter=state.page_limiter)
    except ScratchGPTError as e:
        raise ApiError(400, str(e)) from None


async def served_and_text(request: HttpRequest) -> tuple[ServedModel, str, dict]:
    """The model asked for, the text (after the chat messages framed as the chat endpoint frames them,
    when the body has messages) and the body."""
    body = await read_json(request)
    served = request.app.state.models.get(body.get("model"))
    text = body.get("text", "")
    if not isinstance(text, str):
        raise ApiError(400, "text must be a string", param="text")
    if body.get("messages") is not None:
        text = chat_text(body["messages"], served.speakers) + text
    return served, text, body


async def api_inspect(request: HttpRequest) -> Response:
    """{"model", "text"} or {"model", "messages", "text"}: the attention of the text's last position and the
    logit lens there (`scratchgpt inspect --json`'s object, plus "cropped")."""
    served, text, _ = await served_and_text(request)
    return await off_the_loop(request, inspect_window, served.engine.model, served.tokenizer, text)


def score_limit(top: int) -> int:
    """The most tokens the page scores with top alternatives each."""
    return min(MAX_SCORE_TOKENS, MAX_SCORE_ENTRIES // (1 + top))


def score_within_limit(model, tokenizer: Tokenizer, text: str, top: int) -> dict:
    tokens = len(tokenizer.encode(text))
    if tokens > score_limit(top):
        raise ScratchGPTError(
            f"the text is {tokens:,} tokens; the page scores at most {score_limit(top):,} "
            f"with top {top} (scratchgpt score takes any length)"
        )
    return score_text(model, tokenizer, text, top=top)


async def api_score(request: HttpRequest) -> Response:
    """{"model", "text", "top"}: `scratchgpt score --json`'s object for the text."""
    served, text, body = await served_and_text(request)
    top = numeric_field(body, "top", whole=True, low=0, high=MAX_TOP_LOGPROBS) or 0
    return await off_the_loop(request, score_within_limit, served.engine.model, served.tokenizer, text, top)


ROUTES = [
    Route("/", page, methods=["GET"]),
    Route("/api/inspect", api_inspect, methods=["POST"]),
    Route("/api/score", api_score, methods=["POST"]),
]
