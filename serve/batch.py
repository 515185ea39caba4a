"""The batched engine: one thread owns a model and decodes every request it is serving in one step.

A KV cache with a batch dimension holds up to `parallel` streams, each at its own length (the model's
decode step takes one position per row). The active streams occupy rows 0..n-1, so a step runs on
views of the cache, never a copy. A new request is prefilled into the next free row between steps and
decodes with the others from the next step on; a finished, stopped or abandoned one leaves at once, the
last row moving into its place. Requests beyond `parallel` wait in a bounded line.

The thread never touches the event loop: it reports through each request's `emit` callback, which the
front end makes thread-safe (`loop.call_soon_threadsafe`). A request's `cancelled` flag, set by the
front end when its client leaves, is read before each step.

Each request samples with its own torch.Generator, drawing one uniform per token as the single-stream
engine does, so a seed gives the same tokens alone or in a batch: exactly for greedy text, and for
sampled text unless a batch's matmuls round a logit differently enough to move a pick across a boundary.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from ..model.engine import KVCache
from ..model.logprobs import TokenLogprob, token_logprobs
from ..model.sampling import is_plain, never_sample_bias, next_token_probs, pick, sample_next
from ..model.sampling_settings import GREEDY_BELOW
from ..model.stop_text import StopText
from ..tokenizers import Tokenizer


class ShuttingDown(Exception):
    """submit() after stop(): the engine takes no more requests."""


class QueueFull(Exception):
    """Every row is busy and the waiting line is full."""


@dataclass
class Piece:
    """Text that became final, and the tokens whose text is wholly in the reply so far (with logprobs wanted)."""

    text: str
    tokens: list[tuple[TokenLogprob, int]] = field(default_factory=list)  # (logprob, character offset in the reply)


@dataclass
class Finished:
    """The end of a request: reason "stop", "length", "cancelled" or "error" (then message says why)."""

    reason: str
    prompt_tokens: int
    completion_tokens: int
    prompt_ns: int = 0  # prefill time
    decode_ns: int = 0  # from the first new token to the last
    message: str = ""


@dataclass
class Request:
    """One generation: what to continue, how to sample, and where the engine reports (`emit`, from its thread)."""

    prompt: list[int]
    max_tokens: int
    emit: Callable[[Piece | Finished], None]
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: none wanted; k: each token's logprob and its k likeliest alternatives
    cancelled: bool = False  # set by the front end (another thread); read before each step

    @property
    def plain(self) -> bool:
        """Sampled from the whole tempered distribution: the batch samples these rows together."""
        return is_plain(self.temperature, self.top_k, self.top_p)


class _Row:
    """A request being decoded: its place in the cache and its text so far."""

    def __init__(self, request: Request, tokenizer: Tokenizer, device: torch.device):
        self.request = request
        self.generator = torch.Generator(device=device)
        if request.seed is not None:
            self.generator.manual_seed(request.seed)
        else:
            self.generator.seed()
        self.stream = StopText(tokenizer, request.stop)
        self.pos = len(request.prompt)  # cached positions; the last sampled token is not cached yet
        self.last = 0
        self.count = 0
        self.unreleased: list[tuple[TokenLogprob, int, int]] = []  # (logprob, start, end) awaiting their text
        self.started = time.perf_counter_ns()
        self.prompt_ns = 0
        self.first_token_at = 0


class BatchEngine:
    """Serves one model to many requests at once. `submit` from any thread; `start` and `stop` the thread."""

    def __init__(self, model: torch.nn.Module, tokenizer: Tokenizer, *, parallel: int = 8, max_queue: int = 64):
        if not hasattr(model, "decode_step"):
            raise ValueError("the batched engine needs a GPT model (one with a decode step)")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.config = model.config
        self.parallel, self.max_queue = parallel, max_queue
        param = next(model.parameters())
        self.device = param.device
        self.cache = KVCache.empty(self.config, device=self.device, dtype=param.dtype, batch_size=parallel)
        self.rows: list[_Row] = []
        self.steps = 0  # decode steps run (for tests and the benchmark)
        self._waiting: collections.deque[Request] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._bias = never_sample_bias(self.config.vocab_size, tokenizer.never_sampled, self.device)  # (1, V)
        self._thread = threading.Thread(target=self._run, name="scratchgpt-engine", daemon=True)

    @property
    def busy(self) -> int:
        """Requests being decoded or waiting."""
        return len(self.rows) + len(self._waiting)

    def submit(self, request: Request) -> None:
        with self._lock:  # the thread's last drain of the waiting line takes this lock too: none is left behind
            if self._stopping:
                raise ShuttingDown
            if len(self.rows) + len(self._waiting) >= self.parallel + self.max_queue:
                raise QueueFull
            self._waiting.append(request)
        self._wake.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End every request (reason "error": the server is shutting down) and the thread."""
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        with torch.inference_mode():
            while not self._stopping:
                self._admit()
                if not self.rows:
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                try:
                    self._step()
                except Exception as e:  # a bug or out of memory: end what is running with the reason, keep serving
                    for i in reversed(range(len(self.rows))):
                        self._finish(i, "error", f"generation failed: {type(e).__name__}: {e}")
        for i in reversed(range(len(self.rows))):
            self._finish(i, "error", "the server is shutting down")
        with self._lock:
            waiting, self._waiting = list(self._waiting), collections.deque()
        for request in waiting:
            request.emit(Finished("error", len(request.prompt), 0, message="the server is shutting down"))

    def _admit(self) -> None:
        """Prefill waiting requests into free rows; each samples its first token from its prompt's logits."""
        while len(self.rows) < self.parallel:
            with self._lock:
                if not self._waiting:
                    return
                request = self._waiting.popleft()
            if request.cancelled:
                continue
            row = _Row(request, self.tokenizer, self.device)
            self.rows.append(row)
            try:
                logits = self._prefill(len(self.rows) - 1, request.prompt)  # (1, V)
            except Exception as e:
                self._finish(len(self.rows) - 1, "error", f"prefill failed: {type(e).__name__}: {e}")
                continue
            row.prompt_ns = time.perf_counter_ns() - row.started
            self._accept_all([row], logits)

    def _prefill(self, index: int, ids: list[int]) -> torch.Tensor:
        """Run ids through the model into row index of the cache; the last position's logits (1, V)."""
        x = torch.tensor([ids], dtype=torch.long, device=self.device)  # (1, T)
        return self.model(x, kv_cache=self.cache.row(index), last_only=True)[0][:, -1, :].float()

    def _step(self) -> None:
        """Drop the abandoned rows, then one decode step for every other row."""
        for i in reversed(range(len(self.rows))):
            if self.rows[i].request.cancelled:
                self._finish(i, "cancelled")
        n = len(self.rows)
        if not n:
            return
        idx = torch.tensor([[r.last] for r in self.rows], dtype=torch.long, device=self.device)  # (n, 1)
        pos = torch.tensor([r.pos for r in self.rows], dtype=torch.long, device=self.device)  # (n,)
        # views of the rows in use up to the longest row's end: attention reads what is cached, not the whole window
        end = max(r.pos for r in self.rows) + 1
        layers = [(k[:n, :, :end], v[:n, :, :end]) for k, v in self.cache.layers]
        logits = self.model.decode_step(idx, pos, layers)  # (n, V)
        self.steps += 1
        for r in self.rows:
            r.pos += 1
        self._accept_all(list(self.rows), logits)

    def _sample(self, rows: list[_Row], logits: torch.Tensor) -> list[int]:
        """The next token of each row (logits (n, V)): greedy by argmax, plain rows in one pass, the rest each alone."""
        logits = logits + self._bias
        picked = logits.argmax(dim=-1).tolist()
        plain = [i for i, r in enumerate(rows) if r.request.plain]
        if plain:
            u = torch.cat([torch.rand((1, 1), generator=rows[i].generator, device=self.device) for i in plain])
            temps = torch.tensor([[rows[i].request.temperature] for i in plain], device=self.device)  # (p, 1)
            chosen = pick(next_token_probs(logits[plain], temps), u)[:, 0].tolist()
            for i, token in zip(plain, chosen, strict=True):
                picked[i] = token
        for i, r in enumerate(rows):
            q = r.request
            if not q.plain and q.temperature >= GREEDY_BELOW:
                picked[i] = int(
                    sample_next(
                        logits[i : i + 1],
                        temperature=q.temperature,
                        top_k=q.top_k,
                        top_p=q.top_p,
                        generator=r.generator,
                    )
                )
        return picked

    def _accept_all(self, rows: list[_Row], logits: torch.Tensor) -> None:
        picked = self._sample(rows, logits)
        for i, (row, token) in enumerate(zip(rows, picked, strict=True)):
            logprob = None
            if row.request.logprobs is not None:  # from the logits this step computed: nothing runs again
                chosen = torch.tensor([token], device=self.device)
                logprob = token_logprobs(logits[i : i + 1], chosen, row.request.logprobs)[0]
            if self._accept(row, token, logprob):
                self._finish(self.rows.index(row), self._reason(row))

    @staticmethod
    def _reason(row: _Row) -> str:
        return "stop" if row.stream.stopped else "length"

    def _accept(self, row: _Row, token: int, logprob: TokenLogprob | None) -> bool:
        """Take a row's new token: report the text it makes final. True when the row is done."""
        row.count += 1
        row.last = token
        if row.count == 1:
            row.first_token_at = time.perf_counter_ns()
        start = row.stream.decoded
        text = row.stream.push(token)
        if logprob is not None:
            row.unreleased.append((logprob, start, row.stream.decoded))
        done = row.stream.stopped or row.count >= row.request.max_tokens
        if done and not row.stream.stopped:
            text += row.stream.flush()
        shown = len(row.stream.text)
        released = [(lp, s) for lp, s, e in row.unreleased if e <= shown]
        row.unreleased = [] if done else row.unreleased[len(released) :]
        if text or released:
            row.request.emit(Piece(text, released))
        return done

    def _finish(self, index: int, reason: str, message: str = "") -> None:
        """Report row index finished and move the last row into its place."""
        row = self.rows[index]
        decode_ns = time.perf_counter_ns() - row.first_token_at if row.first_token_at else 0
        row.request.emit(Finished(reason, len(row.request.prompt), row.count, row.prompt_ns, decode_ns, message))
        last = len(self.rows) - 1
        if index != last:
            moved = self.rows[last]
            for k, v in self.cache.layers:
                k[index, :, : moved.pos].copy_(k[last, :, : moved.pos])
                v[index, :, : moved.pos].copy_(v[last, :, : moved.pos])
            self.rows[index] = moved
        self.rows.pop()
