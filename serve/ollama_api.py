"""ollama's API: /api/tags, /api/generate and /api/chat, streamed as NDJSON (one JSON object a line) by default.

Sampling options come in `options` (temperature, top_k, top_p, seed, num_predict, stop), as ollama's
clients send them; the last line has `done: true`, `done_reason` and the counts and durations in ns.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..model.dialogue import SPEECH_END
from .batch import Finished
from .common import (
    ApiError,
    Generation,
    ServedModel,
    chat_text,
    encode_prompt,
    numeric_field,
    read_json,
    refuse_unsupported,
    sampling_fields,
)

OLLAMA_TEMPERATURE = 0.8  # ollama's default
OLLAMA_UNSUPPORTED = ("format", "tools")  # a JSON or structured reply, tool calls: refused, not ignored


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def options(body: dict) -> tuple[dict, int | None]:
    """The Request's sampling fields from body["options"], and num_predict (None: as much as the window holds)."""
    opts = body.get("options") or {}
    if not isinstance(opts, dict):
        raise ApiError(400, "options must be an object", param="options")
    fields = sampling_fields(opts)
    if opts.get("temperature") is None:
        fields["temperature"] = OLLAMA_TEMPERATURE
    num_predict = opts.get("num_predict")
    if type(num_predict) is int and num_predict < 0:
        num_predict = None  # ollama's -1: no limit but the window
    return fields, numeric_field({"num_predict": num_predict}, "num_predict", "max_new_tokens", whole=True)


def final_fields(done: Finished, started_ns: int, now_ns: int) -> dict:
    return {
        "done": True,
        "done_reason": done.reason,
        "total_duration": now_ns - started_ns,
        "load_duration": 0,
        "prompt_eval_count": done.prompt_tokens,
        "prompt_eval_duration": done.prompt_ns,
        "eval_count": done.completion_tokens,
        "eval_duration": done.decode_ns,
    }


def ndjson(obj: dict) -> str:
    return json.dumps(obj) + "\n"


async def lines(gen: Generation, served: ServedModel, chat: bool) -> AsyncIterator[str]:
    async for event in gen.events():
        head = {"model": served.name, "created_at": now()}
        if isinstance(event, Finished):
            if event.reason not in ("stop", "length"):
                yield ndjson({"error": event.message or "generation ended early"})
                return
            body = {"message": {"role": "assistant", "content": ""}} if chat else {"response": ""}
            yield ndjson({**head, **body, **final_fields(event, gen.started, time.perf_counter_ns())})
            return
        body = {"message": {"role": "assistant", "content": event.text}} if chat else {"response": event.text}
        yield ndjson({**head, **body, "done": False})


async def respond(gen: Generation, served: ServedModel, body: dict, chat: bool) -> Response:
    if body.get("stream", True) is not False:
        return StreamingResponse(lines(gen, served, chat), media_type="application/x-ndjson")
    text, _, done = await gen.collect()
    if done.reason not in ("stop", "length"):
        raise ApiError(500, done.message or "generation ended early", kind="server_error")
    reply = {"message": {"role": "assistant", "content": text}} if chat else {"response": text}
    return JSONResponse(
        {"model": served.name, "created_at": now(), **reply, **final_fields(done, gen.started, time.perf_counter_ns())}
    )


async def generate(request: HttpRequest) -> Response:
    body = await read_json(request)
    refuse_unsupported(body, OLLAMA_UNSUPPORTED)
    served = request.app.state.models.get(body.get("model"))
    prompt = body.get("prompt", "")
    if not isinstance(prompt, str):
        raise ApiError(400, "prompt must be a string", param="prompt")
    system = body.get("system")
    if isinstance(system, str) and system:
        prompt = system.strip() + SPEECH_END + prompt
    fields, num_predict = options(body)
    ids, max_tokens = await encode_prompt(served, prompt, num_predict, "num_predict")
    gen = Generation(served, {"prompt": ids, "max_tokens": max_tokens, **fields}, request)
    return await respond(gen, served, body, False)


async def chat(request: HttpRequest) -> Response:
    body = await read_json(request)
    refuse_unsupported(body, OLLAMA_UNSUPPORTED)
    served = request.app.state.models.get(body.get("model"))
    fields, num_predict = options(body)
    fields["stop"] = [*fields["stop"], SPEECH_END]
    prompt = chat_text(body.get("messages"), served.speakers)
    ids, max_tokens = await encode_prompt(served, prompt, num_predict, "messages")
    gen = Generation(served, {"prompt": ids, "max_tokens": max_tokens, **fields}, request)
    return await respond(gen, served, body, True)


async def tags(request: HttpRequest) -> Response:
    models = request.app.state.models.by_name.values()
    listed = [
        {
            "name": m.name,
            "model": m.name,
            "modified_at": datetime.fromtimestamp(m.created, timezone.utc).isoformat(),
            "size": 0,
            "details": {"family": "scratchgpt"},
        }
        for m in models
    ]
    return JSONResponse({"models": listed})


ROUTES = [
    Route("/api/tags", tags, methods=["GET"]),
    Route("/api/generate", generate, methods=["POST"]),
    Route("/api/chat", chat, methods=["POST"]),
]
