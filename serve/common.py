"""What every route shares: errors in the API's shape, the served models, reading a body, the chat prompt,
the sampling fields, and how a request meets an engine (`Generation`).

A leaf: the route modules (openai_api, ollama_api, page) import it, and app.py assembles them into the app.
The event loop never runs the model: a `Generation` hands its request to the model's engine thread and
awaits the pieces that thread posts back with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from starlette.requests import ClientDisconnect
from starlette.requests import Request as HttpRequest

from ..model.dialogue import SPEECH_END, speech, turn_opening
from ..model.sampling_settings import BOUNDS
from ..tokenizers import Tokenizer
from .batch import BatchEngine, Finished, Piece, QueueFull, Request, ShuttingDown
from .security import MAX_BODY, BodyTimeout, clipped, read_off_body

RETRY_AFTER_SECONDS = 1  # told to a client turned away while every row and the waiting line are full
DISCONNECT_POLL = 0.2  # seconds between checks that the client of a whole (unstreamed) reply is still there
# OpenAI fields that would change what a client expects of the reply; refused (400) rather than ignored
UNSUPPORTED_FIELDS = ("tools", "tool_choice", "functions", "function_call", "response_format", "best_of")
CLOSE = {"Connection": "close"}  # a refusal mid-body: the rest is read off up to LINGER_BODY, the connection ends
log = logging.getLogger("uvicorn.error")  # uvicorn's own handler prints it
DEFAULT_SPEAKERS = ("USER", "ASSISTANT")  # the names chat messages are spoken under, unless a message names one


class ApiError(Exception):
    """An error a client caused (or a full server): OpenAI's {"error": {...}}, or on ollama's paths {"error": msg}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers


@dataclass
class ServedModel:
    """A model by the name clients ask for, its engine and how chat turns are framed for it."""

    name: str
    engine: BatchEngine
    speakers: tuple[str, str] = DEFAULT_SPEAKERS
    created: int = field(default_factory=lambda: int(time.time()))

    @property
    def tokenizer(self) -> Tokenizer:
        return self.engine.tokenizer

    @property
    def block_size(self) -> int:
        return self.engine.config.block_size


class Models:
    """The served models, filled in once loaded (until then /health answers 503)."""

    def __init__(self) -> None:
        self.by_name: dict[str, ServedModel] = {}
        self.ready = False
        self.failure: str | None = None  # why loading failed, for /health
        self.stopping = False  # set by stop(): from then on every request is a 503 at once

    def add(self, served: ServedModel) -> None:
        self.by_name[served.name] = served

    def get(self, name: object) -> ServedModel:
        if self.stopping:
            raise shutting_down()
        if not self.ready:
            raise ApiError(
                503,
                "the model is still loading; retry shortly",
                kind="server_error",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        if name is None and len(self.by_name) == 1:
            return next(iter(self.by_name.values()))
        if not isinstance(name, str) or name not in self.by_name:
            names = ", ".join(self.by_name)
            raise ApiError(
                400,
                f"model {clipped(name)} is not served here; use one of: {names}",
                param="model",
                code="model_not_found",
            )
        return self.by_name[name]

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        for served in self.by_name.values():
            served.engine.stop(timeout)


def shutting_down() -> ApiError:
    return ApiError(
        503,
        "the server is shutting down; retry against another or later",
        kind="server_error",
        code="shutting_down",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def request_id(request: HttpRequest) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


async def read_json(request: HttpRequest) -> dict:
    """The request's JSON object; 413 past MAX_BODY bytes (counted as they arrive), 408 when the body is late,
    400 for anything not an object (too deeply nested JSON included). A client gone mid-body is one log line."""
    size, chunks, more = 0, [], True
    try:
        while more:  # the body's messages as they come (not request.stream(): the refusal must know if more is due)
            message = await request.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnect
            chunk, more = message.get("body", b""), message.get("more_body", False)
            size += len(chunk)
            if size > MAX_BODY:
                if more:
                    await read_off_body(request.receive, size)
                raise ApiError(
                    413,
                    f"the request body is over {MAX_BODY:,} bytes; send a shorter prompt",
                    code="body_too_large",
                    headers=CLOSE,
                )
            chunks.append(chunk)
    except BodyTimeout:
        raise ApiError(
            408,
            "the request body did not arrive in time; send it whole and at once",
            code="body_timeout",
            headers=CLOSE,
        ) from None
    except ClientDisconnect:
        log.warning(
            "request %s: %s %s: the client disconnected before its body was whole (%d bytes came)",
            request_id(request),
            request.method,
            request.url.path,
            size,
        )
        raise ApiError(499, "the client closed the connection", kind="client_closed") from None
    try:
        body = json.loads(b"".join(chunks))
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply to read") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ApiError(400, f"the request body is not valid JSON ({e})") from None
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, not {type(body).__name__}")
    return body


def chat_text(messages: object, speakers: tuple[str, str]) -> str:
    """Chat messages as the model reads them: system text first, each message a speech by its speaker (the
    message's `name`, else the user's or the assistant's default), then the assistant's speaker opening its turn."""
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list of {role, content} objects", param="messages")
    parts, user, assistant = [], *speakers
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant"):
            raise ApiError(400, f"messages[{i}] needs a role of system, user or assistant", param=f"messages[{i}]")
        content = m.get("content")
        if isinstance(content, list):  # content parts: the text ones, joined
            content = "".join(part_text(part, f"messages[{i}].content[{j}]") for j, part in enumerate(content))
        if not isinstance(content, str):
            raise ApiError(400, f"messages[{i}].content must be a string", param=f"messages[{i}].content")
        name = m.get("name") if isinstance(m.get("name"), str) and m.get("name") else None
        if m["role"] in ("system", "developer"):
            parts.append(content.strip() + SPEECH_END)
        else:
            parts.append(speech(name or (user if m["role"] == "user" else assistant), content))
    return "".join(parts) + turn_opening(assistant)


def part_text(part: object, where: str) -> str:
    """A content part's text: a text part's string, nothing for another kind (an image, say)."""
    if not isinstance(part, dict) or part.get("type") != "text":
        return ""
    text = part.get("text", "")
    if not isinstance(text, str):
        raise ApiError(400, f"{where}.text must be a string", param=f"{where}.text")
    return text


def refuse_unsupported(body: dict, fields: tuple[str, ...] = UNSUPPORTED_FIELDS) -> None:
    """400 naming the first field of fields that body sets: a client asking for tools or a JSON reply must
    hear that it will not get one, not read a plain reply as if it had (best_of 1 is the plain reply)."""
    for name in fields:
        value = body.get(name)
        if value is not None and value != "" and not (name == "best_of" and value == 1 and type(value) is int):
            raise ApiError(400, f"{name} is not supported by this server", param=name, code="unsupported_parameter")


async def encode_prompt(
    served: ServedModel, prompt: str | list[int], max_tokens: int | None, param: str
) -> tuple[list[int], int]:
    """The prompt's ids (prompt itself when it is ids) and the reply's length: both must fit the model's
    window (400 naming the sizes). Text is tokenized in a worker thread: a megabyte of it takes a BPE
    tokenizer most of a second, which the event loop's other clients must not wait for."""
    ids = prompt if isinstance(prompt, list) else await anyio.to_thread.run_sync(served.tokenizer.encode, prompt)
    ids = ids or served.tokenizer.encode("\n") or [0]
    room = served.block_size - len(ids)
    if max_tokens is None and room >= 1:
        return ids, room
    if max_tokens is None or max_tokens > room:
        asked = f" plus max_tokens {max_tokens}" if max_tokens is not None else ""
        raise ApiError(
            400,
            f"the prompt's {len(ids)} tokens{asked} exceed the model's {served.block_size}-token "
            "window; shorten the prompt or ask for fewer tokens",
            param=param,
            code="context_length_exceeded",
        )
    return ids, max_tokens


class Generation:
    """One request handed to an engine; iterate `events()` on the event loop for its Pieces and its Finished."""

    def __init__(self, served: ServedModel, request_fields: dict, http: HttpRequest):
        loop = asyncio.get_running_loop()
        self.http = http
        self.queue: asyncio.Queue[Piece | Finished] = asyncio.Queue()
        self.request = Request(emit=lambda e: loop.call_soon_threadsafe(self.queue.put_nowait, e), **request_fields)
        self.started = time.perf_counter_ns()
        try:
            served.engine.submit(self.request)
        except ShuttingDown:
            raise shutting_down() from None
        except QueueFull:
            raise ApiError(
                503,
                "the server is busy (every slot and the waiting line are full); retry shortly",
                kind="server_error",
                code="server_busy",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            ) from None

    async def events(self) -> AsyncIterator[Piece | Finished]:
        """Pieces as they come, then the Finished. Left early (a client gone), the engine drops the request."""
        try:
            while True:
                event = await self.queue.get()
                yield event
                if isinstance(event, Finished):
                    return
        finally:
            self.request.cancelled = True  # read by the engine thread before its next step

    async def collect(self) -> tuple[str, list, Finished]:
        """The whole reply: its text, its (logprob, offset) pairs and how it ended. A client that hangs up
        first (checked every DISCONNECT_POLL seconds) cancels it, as a stream's does at its next token."""
        task = asyncio.ensure_future(self._collect())
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL)
            if not task.done() and await self.http.is_disconnected():
                task.cancel()  # events() then marks the request cancelled
                raise ApiError(499, "the client closed the connection", kind="client_closed")
        return task.result()

    async def _collect(self) -> tuple[str, list, Finished]:
        text, tokens = [], []
        async for event in self.events():
            if isinstance(event, Finished):
                return "".join(text), tokens, event
            text.append(event.text)
            tokens.extend(event.tokens)
        raise AssertionError("events ended without a Finished")


def error_body(path: str, e: ApiError) -> dict:
    if path.startswith("/api/"):  # ollama's clients read a plain message
        return {"error": e.message}
    return {"error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}}


MAX_STOPS = 4  # OpenAI's bound on stop strings


def numeric_field(
    body: dict,
    name: str,
    bound: str | None = None,
    *,
    whole: bool = False,
    low: float | None = None,
    high: float | None = None,
) -> float | int | None:
    """body[name] (None when absent or null), checked against BOUNDS[bound] or [low, high]; 400 naming the field."""
    value = body.get(name)
    if value is None:
        return None
    ok = not isinstance(value, bool) and isinstance(value, int if whole else (int, float))
    if bound is not None:
        rule = BOUNDS[bound]
        ok, describe = ok and rule.allows(value), rule.describe()
    else:
        ok, describe = ok and low <= value <= high, f"{'a whole number' if whole else 'a number'} in {low}..{high}"
    if not ok:
        raise ApiError(400, f"{name} must be {describe}, got {clipped(value)}", param=name, code="invalid_value")
    return value


def stops(value: object) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > MAX_STOPS or not all(isinstance(s, str) for s in items):
        raise ApiError(400, f"stop must be a string or a list of at most {MAX_STOPS} strings", param="stop")
    return [s for s in items if s]


def sampling_fields(body: dict) -> dict:
    """The Request fields every endpoint shares: temperature, top_p, top_k (an extension), seed, stop."""
    if body.get("n") not in (None, 1):
        raise ApiError(400, "n must be 1: this server samples one choice per request", param="n")
    temperature = numeric_field(body, "temperature", "temperature")
    return {
        "temperature": 1.0 if temperature is None else float(temperature),
        "top_p": numeric_field(body, "top_p", "top_p"),
        "top_k": numeric_field(body, "top_k", "top_k", whole=True),
        "seed": numeric_field(body, "seed", "seed", whole=True),
        "stop": stops(body.get("stop")),
    }
