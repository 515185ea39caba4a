"""OpenAI's API: /v1/models, /v1/completions and /v1/chat/completions, whole or streamed as server-sent events.

Log-probabilities are the model's own (temperature 1, before top-k/top-p), in OpenAI's two shapes:
chat's `logprobs.content[]` and the completions' `tokens / token_logprobs / top_logprobs / text_offset`
(offsets count characters from the start of the prompt, as OpenAI's do).

A completion's prompt is text or token ids. With `echo: true` the reply starts with the prompt, and
its logprobs with the prompt's tokens scored by one forward pass (the first token's are null: nothing
came before it); with `max_tokens: 0` as well, nothing is generated. That is how evaluation harnesses
(lm-evaluation-harness's local-completions) read a model's log-likelihood of a text.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator

import anyio
from starlette.requests import Request as HttpRequest
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..model.dialogue import SPEECH_END
from ..model.inspection import score_ids
from ..model.logprobs import MAX_TOP_LOGPROBS, TokenLogprob
from ..tokenizers import StreamDecoder, Tokenizer
from .batch import Finished
from .common import (
    ApiError,
    Generation,
    ServedModel,
    chat_text,
    clipped,
    encode_prompt,
    error_body,
    numeric_field,
    read_json,
    refuse_unsupported,
    sampling_fields,
)


def openai_token(tokenizer: Tokenizer, token: int) -> tuple[str, list[int]]:
    """A token as OpenAI shows it: its text, or "bytes:\\x.." when it is part of a character; and its bytes."""
    raw = tokenizer.token_bytes(token)
    try:
        return raw.decode("utf-8"), list(raw)
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw), list(raw)


def chat_logprobs(tokenizer: Tokenizer, tokens: list[tuple[TokenLogprob, int]]) -> dict:
    content = []
    for lp, _ in tokens:
        text, raw = openai_token(tokenizer, lp.id)
        top = [dict(zip(("token", "bytes"), openai_token(tokenizer, i), strict=True), logprob=v) for i, v in lp.top]
        content.append({"token": text, "logprob": lp.logprob, "bytes": raw, "top_logprobs": top})
    return {"content": content}


def completion_logprobs(tokenizer: Tokenizer, tokens: list[tuple[TokenLogprob, int]], prompt_chars: int) -> dict:
    """The completions' shape; a token whose logprob is None (an echoed prompt's first) has null top_logprobs."""
    top = [None if lp.logprob is None else {openai_token(tokenizer, i)[0]: v for i, v in lp.top} for lp, _ in tokens]
    return {
        "tokens": [openai_token(tokenizer, lp.id)[0] for lp, _ in tokens],
        "token_logprobs": [lp.logprob for lp, _ in tokens],
        "top_logprobs": top,
        "text_offset": [prompt_chars + offset for _, offset in tokens],
    }


def usage(done: Finished) -> dict:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
    }


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


class Echo:
    """A completion's prompt as `echo: true` puts it in front of the reply: its text and scored tokens."""

    def __init__(self, text: str, tokens: list[tuple[TokenLogprob, int]]):
        self.text, self.tokens = text, tokens


async def scored_prompt(request: HttpRequest, served: ServedModel, ids: list[int], k: int | None) -> Echo:
    """The prompt's text, and each of its tokens with its log-probability given those before it and its
    character offset: one forward pass in a worker thread, beside the engine's own thread."""
    tokenizer = served.tokenizer
    if k is None:  # the text alone
        return Echo(tokenizer.decode(ids), [])
    records = await anyio.to_thread.run_sync(lambda: score_ids(served.engine.model, ids, top=k))
    first = TokenLogprob(ids[0], None)  # type: ignore[arg-type]  # nothing came before it
    decoder, offsets, text = StreamDecoder(tokenizer), [], ""
    for token in ids:  # each token's offset: the characters final before it, as the reply's are counted
        offsets.append(len(text))
        text += decoder.push(token)
    return Echo(text + decoder.flush(), list(zip([first, *records], offsets, strict=True)))


class ReplyFormat:
    """How one reply is laid out, which is what differs between the two generation endpoints: the object
    names, and where the text and the logprobs go."""

    def __init__(self, served: ServedModel, *, chat: bool, prompt_chars: int = 0, echo: Echo | None = None):
        self.served, self.chat, self.prompt_chars, self.echo = served, chat, prompt_chars, echo
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def logprobs(self, tokens: list, with_logprobs: bool) -> dict | None:
        if not with_logprobs:
            return None
        tokenizer = self.served.tokenizer
        return (
            chat_logprobs(tokenizer, tokens) if self.chat else completion_logprobs(tokenizer, tokens, self.prompt_chars)
        )

    def echoed(self, text: str | None, tokens: list, with_logprobs: bool, finish: str | None, *, whole: bool) -> dict:
        """A completion choice with the echoed prompt in front of text and of its logprobs."""
        choice = self.choice(self.echo.text + (text or ""), tokens, with_logprobs, finish, whole=whole)
        if with_logprobs:
            prompt = completion_logprobs(self.served.tokenizer, self.echo.tokens, 0)
            choice["logprobs"] = {key: prompt[key] + choice["logprobs"][key] for key in prompt}
        return choice

    def choice(self, text: str | None, tokens: list, with_logprobs: bool, finish: str | None, *, whole: bool) -> dict:
        """One choice; a chunk's text None means no content (chat's last delta is {})."""
        choice: dict = {"index": 0}
        if not self.chat:
            choice["text"] = text or ""
        elif whole:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["delta"] = {} if text is None else {"content": text}
        choice["logprobs"] = self.logprobs(tokens, with_logprobs)
        choice["finish_reason"] = finish
        return choice

    def envelope(self, choices: list[dict], *, whole: bool, usage: dict | None = None, streaming_usage=False) -> dict:
        kind = ("chat.completion" if whole else "chat.completion.chunk") if self.chat else "text_completion"
        out = {"id": self.id, "object": kind, "created": self.created, "model": self.served.name, "choices": choices}
        if usage is not None or streaming_usage:
            out["usage"] = usage
        return out


async def stream_events(
    gen: Generation, layout: ReplyFormat, with_logprobs: bool, include_usage: bool
) -> AsyncIterator[str]:
    """The SSE frames of one reply: its pieces, a last chunk with finish_reason, the usage if asked, [DONE]; a
    failure midway ends with an error event."""
    if layout.chat:  # OpenAI's first chunk names the role
        first = layout.choice("", [], False, None, whole=False)
        first["delta"]["role"] = "assistant"
        yield sse(layout.envelope([first], whole=False, streaming_usage=include_usage))
    if layout.echo is not None:  # the prompt comes first, as one chunk
        yield sse(
            layout.envelope(
                [layout.echoed(None, [], with_logprobs, None, whole=False)], whole=False, streaming_usage=include_usage
            )
        )
    async for event in gen.events():
        if isinstance(event, Finished):
            if event.reason not in ("stop", "length"):
                error = error_body("/v1", ApiError(500, event.message or "generation ended early", kind="server_error"))
                yield sse(error)
                return
            last = layout.choice(None, [], False, event.reason, whole=False)
            yield sse(layout.envelope([last], whole=False, streaming_usage=include_usage))
            if include_usage:
                yield sse(layout.envelope([], whole=False, usage=usage(event)))
            yield sse("[DONE]")
            return
        choice = layout.choice(event.text, event.tokens, with_logprobs, None, whole=False)
        yield sse(layout.envelope([choice], whole=False, streaming_usage=include_usage))


async def respond(gen: Generation, layout: ReplyFormat, body: dict, with_logprobs: bool) -> Response:
    stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    if stream:
        frames = stream_events(gen, layout, with_logprobs, include_usage)
        return StreamingResponse(
            frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        )
    text, tokens, done = await gen.collect()
    if done.reason not in ("stop", "length"):
        raise ApiError(500, done.message or "generation ended early", kind="server_error")
    choose = layout.choice if layout.echo is None else layout.echoed
    choice = choose(text, tokens, with_logprobs, done.reason, whole=True)
    return JSONResponse(layout.envelope([choice], whole=True, usage=usage(done)))


def prompt_of(served: ServedModel, prompt: object) -> str | list[int]:
    """A completion's one prompt: text, or token ids of the model's vocabulary (either alone in a list)."""
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
        prompt = prompt[0]
    if isinstance(prompt, str):
        return prompt
    vocab = served.tokenizer.vocab_size
    if isinstance(prompt, list) and prompt and all(type(i) is int and 0 <= i < vocab for i in prompt):
        return prompt
    raise ApiError(
        400,
        f"prompt must be a string or a non-empty list of token ids below {vocab} (one prompt per request)",
        param="prompt",
    )


async def completions(request: HttpRequest) -> Response:
    body = await read_json(request)
    refuse_unsupported(body)
    served = request.app.state.models.get(body.get("model"))
    prompt = prompt_of(served, body.get("prompt", ""))
    echo = body.get("echo", False)
    if not isinstance(echo, bool):
        raise ApiError(400, f"echo must be true or false, got {clipped(echo)}", param="echo")
    k = numeric_field(body, "logprobs", whole=True, low=0, high=MAX_TOP_LOGPROBS)
    fields = sampling_fields(body)
    asked = body.get("max_tokens")
    nothing_new = echo and asked == 0 and type(asked) is int  # the prompt scored, nothing generated
    asked = 1 if nothing_new else numeric_field(body, "max_tokens", "max_new_tokens", whole=True)
    ids, max_tokens = await encode_prompt(served, prompt, asked, "max_tokens")
    text = prompt if isinstance(prompt, str) else served.tokenizer.decode(ids)
    echoed = await scored_prompt(request, served, ids, k) if echo else None
    layout = ReplyFormat(served, chat=False, prompt_chars=len(echoed.text if echoed else text), echo=echoed)
    if nothing_new:
        choice = layout.echoed("", [], k is not None, "length", whole=True)
        return JSONResponse(layout.envelope([choice], whole=True, usage=usage(Finished("length", len(ids), 0))))
    gen = Generation(served, {"prompt": ids, "max_tokens": max_tokens, "logprobs": k, **fields}, request)
    return await respond(gen, layout, body, k is not None)


async def chat_completions(request: HttpRequest) -> Response:
    body = await read_json(request)
    refuse_unsupported(body)
    served = request.app.state.models.get(body.get("model"))
    with_logprobs = body.get("logprobs") is True
    k = numeric_field(body, "top_logprobs", whole=True, low=0, high=MAX_TOP_LOGPROBS)
    if k and not with_logprobs:
        raise ApiError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    fields = sampling_fields(body)
    fields["stop"] = [*fields["stop"], SPEECH_END]  # a reply is one speech
    max_tokens = numeric_field(body, "max_completion_tokens", "max_new_tokens", whole=True)
    if max_tokens is None:
        max_tokens = numeric_field(body, "max_tokens", "max_new_tokens", whole=True)
    ids, max_tokens = await encode_prompt(
        served, chat_text(body.get("messages"), served.speakers), max_tokens, "messages"
    )
    logprobs = (k or 0) if with_logprobs else None
    gen = Generation(served, {"prompt": ids, "max_tokens": max_tokens, "logprobs": logprobs, **fields}, request)
    return await respond(gen, ReplyFormat(served, chat=True), body, with_logprobs)


async def list_models(request: HttpRequest) -> Response:
    models = request.app.state.models
    data = [
        {"id": m.name, "object": "model", "created": m.created, "owned_by": "scratchgpt"}
        for m in models.by_name.values()
    ]
    return JSONResponse({"object": "list", "data": data})


ROUTES = [
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
]
