"""Fast generation: a static KV cache and generators of tokens and text (sampling itself: sampling.py).

`Engine.generate` yields token ids one at a time. It keeps the cache between calls, so a caller
that passes a growing conversation pays only for the tokens it has not seen. When the window is
full it drops the oldest half and re-prefills once, instead of recomputing the window per token.
`Completion` turns those ids into text through the one streaming decoder and applies stop strings.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence

import torch

from ..core.errors import ScratchGPTError
from ..tokenizers import Tokenizer
from .gpt import GPTConfig
from .logprobs import MAX_TOP_LOGPROBS, TokenLogprob, token_logprobs
from .quant import int8_supported, quantize_int8
from .sampling import is_plain, never_sample_bias, next_token_probs, pick, sample_next
from .sampling_settings import SamplingSettings
from .stop_text import StopText


def _decode_and_sample(step, idx, pos, caches, temperature, u, bias):
    """One decode step and the pick of the token after it, in one graph when compiled. bias (1, V)
    is 0, or -inf for the tokens never to sample."""
    logits = step(idx, pos, caches)
    return logits, pick(next_token_probs(logits + bias, temperature), u)


class KVCache:
    """Static key/value buffers, one (k, v) pair per layer, each (B, nh, block_size, hs).

    `tokens` are the ids whose keys and values the buffers hold; the model writes at `pos` and
    calls `advance`. Nothing is reallocated while generating. Each layer has tensors of its own,
    so a compiled decode step updates them in place rather than copying one big buffer.
    """

    def __init__(self, layers: list[tuple[torch.Tensor, torch.Tensor]]):
        self.layers = layers
        self.pos = 0
        self.tokens: list[int] = []

    @classmethod
    def empty(cls, config: GPTConfig, *, device: torch.device, dtype: torch.dtype, batch_size: int = 1) -> KVCache:
        """Zeroed buffers for batch_size rows of config.block_size positions."""
        n_layer = config.n_layer if config.arch == "gpt" else 0
        shape = (batch_size, config.n_head, config.block_size, config.head_size)
        return cls(
            [
                (torch.zeros(shape, device=device, dtype=dtype), torch.zeros(shape, device=device, dtype=dtype))
                for _ in range(n_layer)
            ]
        )

    def row(self, i: int) -> KVCache:
        """Row i of these buffers as a one-row cache, empty: what the model writes through it lands in row i
        (a batch engine's prefill of one request)."""
        return KVCache([(k[i : i + 1], v[i : i + 1]) for k, v in self.layers])

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layers[i]

    def advance(self, n: int) -> None:
        self.pos += n

    def truncate(self, n: int) -> None:
        """Forget everything from position n on (the buffers are simply overwritten later)."""
        self.pos = n
        del self.tokens[n:]

    def reset(self) -> None:
        self.truncate(0)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


class Engine:
    """Owns a model in eval mode and its KV cache; generation continues from whatever it last saw.

    Prompts are prefilled by the model itself. Each new token after that goes through the decode
    step: the model's own `decode_step`, optionally with int8 weights (`quantize="int8"`, CPU) and
    compiled (`compile=True`: one static-shape graph, built on first use, a few seconds once
    inductor's cache is warm).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        dtype: torch.dtype | None = None,
        compile: bool = False,
        quantize: str | None = None,
    ):
        self.model = model.eval()
        self.config: GPTConfig = model.config
        param = next(model.parameters())
        self.device = param.device
        # with int8 weights the keys and values are kept in bf16, like the int8 kernel's activations:
        # the decode step reads the whole cache every token, so half the bytes is a faster step.
        # Attention still runs in fp32. Not fp16: mixed with bf16 in one Inductor kernel it warns.
        kv_dtype = dtype or (torch.bfloat16 if quantize == "int8" else param.dtype)
        self.cache = KVCache.empty(self.config, device=self.device, dtype=kv_dtype)
        self._last_logits: torch.Tensor | None = None  # (1, V) after the last cached token
        self._step = None  # the one-token forward, when the model has one
        self.copies_weights = False  # True when decoding reads a copy (int8) that training does not update
        if hasattr(model, "decode_step"):
            decoder = model
            if quantize == "int8":
                if not int8_supported(self.device):
                    raise ScratchGPTError(f"--quantize int8 decodes on the CPU only, not {self.device.type}; drop it")
                decoder = quantize_int8(model)
                self.copies_weights = True
            elif quantize not in (None, "none"):
                raise ValueError(f"unknown quantization {quantize!r}")
            self._decoder = decoder
            self._compiled = compile
            step = functools.partial(_decode_and_sample, decoder.decode_step)
            if compile:
                # on the CPU the graph's wrapper (some 30 kernel and int8 matmul calls a step) runs as
                # C++ rather than Python: a shorter step at the same compile time
                options = {"cpp_wrapper": True} if self.device.type == "cpu" else None
                step = torch.compile(step, fullgraph=True, dynamic=False, options=options)
            self._step = step
            # the step's inputs, filled in place: every call passes the same tensors
            self._token = torch.zeros((1, 1), dtype=torch.long, device=self.device)
            self._pos = torch.zeros((), dtype=torch.long, device=self.device)
            self._temperature = torch.ones((), device=self.device)  # data, so /temp never recompiles
            self._u = torch.zeros((1, 1), device=self.device)
        self._bias = torch.zeros((1, self.config.vocab_size), device=self.device)  # see never_sample
        self._never: tuple[int, ...] = ()

    def never_sample(self, ids: Sequence[int]) -> None:
        """Tokens generate never picks (a word vocabulary's <unk>); their logits stay as the model made them."""
        self._never = tuple(sorted(set(ids)))
        self._bias.copy_(never_sample_bias(self.config.vocab_size, self._never, self.device))

    def reset(self) -> None:
        self.cache.reset()
        self._last_logits = None

    @property
    def last_logits(self) -> torch.Tensor | None:
        """The model's own logits (1, V) after the last cached token, before never_sample's bias.

        While `generate` is paused at a yield, they are the distribution the yielded token was drawn
        from: the decode step that picked it computed them, so a caller that records them (`Completion`
        with logprobs) runs nothing again. A fresh tensor each step, safe to keep.
        """
        return self._last_logits

    @property
    def can_probe(self) -> bool:
        return self._step is not None

    @torch.inference_mode()
    def probe_step(self) -> None:
        """One eager decode step at position 0, its logits thrown away: what threads.py times.
        Empties the cache first (the step overwrites position 0)."""
        self.reset()
        self._token.zero_()
        self._pos.zero_()
        self._decoder.decode_step(self._token, self._pos, self.cache.layers)

    @torch.inference_mode()
    def _extend(
        self, ids: Sequence[int], *, pick_next: bool = False, generator: torch.Generator | None = None
    ) -> int | None:
        """Run ids through the model at the end of the cache, keeping the last position's logits.

        With one id and pick_next, the decode step also samples the token after it at
        `self._temperature`, as sample_next would (no top-k/top-p), and returns it.
        """
        start, nxt = self.cache.pos, None
        try:
            if len(ids) == 1 and self._step is not None:
                self._token.fill_(ids[0])
                self._pos.fill_(start)
                if pick_next:
                    torch.rand(self._u.shape, generator=generator, out=self._u)
                if pick_next or self._compiled:  # compiled: one graph, its pick unused when not wanted
                    logits, picked = self._step(
                        self._token, self._pos, self.cache.layers, self._temperature, self._u, self._bias
                    )
                else:
                    logits = self._decoder.decode_step(self._token, self._pos, self.cache.layers)
                if pick_next:
                    nxt = int(picked)  # the one host sync per token: the caller wants the id now
                self.cache.advance(1)
            else:
                x = torch.tensor([list(ids)], dtype=torch.long, device=self.device)  # (1, T)
                logits = self.model(x, kv_cache=self.cache, last_only=True)[0][:, -1, :]  # (1, V)
        except BaseException:  # Ctrl-C mid-forward: leave the cache as it was, then re-raise
            self.cache.truncate(start)
            self._last_logits = None
            raise
        self.cache.tokens.extend(ids)
        self._last_logits = logits
        return nxt

    def _window(self, context: Sequence[int]) -> list[int]:
        """The tail of context to attend over: at most block_size tokens, aligned with the cache
        when the cache holds a stretch of context (so a long conversation does not re-prefill)."""
        block, cached = self.config.block_size, self.cache.tokens
        first = max(0, len(context) - block)
        if cached and len(context) > block:
            for s in range(len(context) - len(cached), first - 1, -1):  # latest first: least to run
                if context[s] == cached[0] and list(context[s : s + len(cached)]) == cached:
                    return list(context[s:])
        return list(context[first:])

    def prefill(self, context: Sequence[int]) -> int:
        """Make the cache end with context, computing only the tokens it lacks. Returns how many
        tokens were run through the model."""
        if not context:
            raise ValueError("context must hold at least one token")
        ids = self._window(context)
        n = _common_prefix(self.cache.tokens, ids)
        if n == len(ids) == len(self.cache.tokens) and self._last_logits is not None:
            return 0
        n = min(n, len(ids) - 1)  # the last token must run again to give fresh logits
        self.cache.truncate(n)
        self._extend(ids[n:])
        return len(ids) - n

    def generate(
        self,
        context: Sequence[int],
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[int]:
        """Yield up to max_new_tokens sampled ids that continue context (never one of never_sample's)."""
        self.prefill(context)
        block = self.config.block_size
        # plain sampling happens inside the decode step; top-k/top-p and greedy pick outside it
        fused = is_plain(temperature, top_k, top_p)
        if fused and self._step is not None:
            self._temperature.fill_(temperature)
        nxt = None  # the next token, when the decode step has already picked it
        for i in range(max_new_tokens):
            if nxt is None:
                logits = self._last_logits + self._bias if self._never else self._last_logits
                nxt = int(sample_next(logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator))
            token, nxt = nxt, None
            yield token
            if self.cache.pos < block:
                # the last token goes into the cache too, for the next turn, without drawing a pick
                last = i == max_new_tokens - 1
                nxt = self._extend([token], pick_next=fused and not last, generator=generator)
            else:  # window full: keep the newest half and prefill it once
                keep = self.cache.tokens[-(block // 2 - 1) :] + [token] if block > 2 else [token]
                self.reset()
                self._extend(keep)


class Completion:
    """One reply: iterate it for text pieces as they become final. Afterwards `text`, `ids` and
    `stop_reason` ("length", "stop", or None while running / when interrupted) describe it.

    Text that could be the start of a stop string is held back until it cannot be. The
    tokenizer's `never_sampled` tokens (a word vocabulary's <unk>) are never sampled.

    With `logprobs=K` (0..MAX_TOP_LOGPROBS) it keeps each token's distribution as the decode step
    left it (`logits`, one (1, V) row per id: a reference, nothing computed) and `logprobs` turns the
    rows not yet read into `TokenLogprob`s with K alternatives, in one batch, when someone reads it.
    Without it nothing is kept. After a stop string cut a token in two, the records cover the ids
    the text kept that were sampled as such (`ids[:len(logprobs)]`).
    """

    def __init__(
        self,
        engine: Engine,
        tokenizer: Tokenizer,
        context: Sequence[int],
        settings: SamplingSettings,
        *,
        generator: torch.Generator | None = None,
        extra_stop: Sequence[str] = (),
        logprobs: int | None = None,
    ):
        if logprobs is not None and not 0 <= logprobs <= MAX_TOP_LOGPROBS:
            raise ScratchGPTError(f"logprobs must be from 0 to {MAX_TOP_LOGPROBS} alternatives, got {logprobs}")
        self.tokenizer = tokenizer
        self.stop = [s for s in (*settings.stop, *extra_stop) if s]
        self.ids: list[int] = []
        self.top_logprobs = logprobs  # alternatives per record, or None: nothing recorded
        self.logits: list[torch.Tensor] = []  # (1, V) per sampled id, when recording
        self._records: list[TokenLogprob] = []
        self._engine = engine
        self.text = ""
        self.stop_reason: str | None = None
        engine.never_sample(tokenizer.never_sampled)
        self._tokens = engine.generate(
            context, max_new_tokens=settings.max_new_tokens, generator=generator, **settings.sampling_options()
        )

    @property
    def logprobs(self) -> list[TokenLogprob]:
        """What the model thought of each sampled id: its own log-probability, temperature 1, and the
        top alternatives, in step with `ids`. Empty unless the completion was made with logprobs."""
        done = len(self._records)
        if self.top_logprobs is not None and done < len(self.logits):
            rows = torch.cat(self.logits[done:])  # (N, V)
            chosen = torch.tensor(self.ids[done : len(self.logits)])
            self._records += token_logprobs(rows, chosen, self.top_logprobs)
        return self._records

    def __iter__(self) -> Iterator[str]:
        stream = StopText(self.tokenizer, self.stop)
        for token in self._tokens:
            self.ids.append(token)
            if self.top_logprobs is not None:
                self.logits.append(self._engine.last_logits)  # what the token was drawn from, kept as is
            piece = stream.push(token)
            self.text = stream.text
            if stream.stopped:
                self._tokens.close()
                sampled, self.ids = self.ids, self.tokenizer.encode(self.text)
                del self.logits[_common_prefix(sampled, self.ids) :]  # records only for ids sampled as such
                del self._records[len(self.logits) :]
                self.stop_reason = "stop"
            if piece:
                yield piece
            if stream.stopped:
                return
        piece = stream.flush()
        self.text, self.stop_reason = stream.text, "length"
        if piece:
            yield piece
