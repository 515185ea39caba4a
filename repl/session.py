"""A REPL session's state and behaviour, with no terminal in sight.

`Session` holds the loaded checkpoint, an `Engine` over its model, the sampling settings and a
`Conversation` (conversation.py: the token ids, the window, /chat's framing, the notices).
`reply(text)` continues the conversation with text and returns a `Reply` to iterate for text
pieces; when the reply ends (finished, stopped, or interrupted) what it produced joins the
conversation, so the next turn costs only its new tokens (the engine keeps its KV cache). The
session also swaps models (/tokenizer, /load), saves them, hands them to /train and reports on them.

Every reply samples with its own generator, seeded from (settings.seed, turn number), so the same
inputs in the same order replay a session exactly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..core.errors import ScratchGPTError
from ..model.checkpoint import (
    Checkpoint,
    check_replaceable,
    load_checkpoint,
    save_checkpoint,
    shipped_checkpoint,
)
from ..model.engine import Completion, Engine
from ..model.logprobs import MAX_TOP_LOGPROBS
from ..model.sampling_settings import SamplingSettings
from ..model.threads import DEFAULT_THREADS, ThreadChoice, choose_decode_threads
from ..tokenizers import Tokenizer
from ..training.config import FINE_TUNE_EVAL_ITERS
from ..training.start import corpus_record
from .conversation import Conversation

if TYPE_CHECKING:
    from ..core.interrupt import InterruptFlag
    from ..training.finetune import FineTuneReport
    from ..training.loop import StepInfo

# the settings /show lists, in its order; Session.setting_text formats each
SETTING_NAMES = ("temperature", "length", "top-k", "top-p", "seed", "stop", "chat", "verbose", "probs", "threads")


def turn_seed(seed: int, turn: int) -> int:
    """The generator seed of one turn: distinct per turn, the same for the same (seed, turn)."""
    return (seed * 1_000_003 + turn) % 2**63


@dataclass
class Settings(SamplingSettings):
    """What the sampling commands (/temp, /len, ...) and their flags set, and /verbose."""

    verbose: bool = False  # stats lines also give prompt tokens and prefill time
    probs: bool = False  # /probs: replies shaded by each token's probability


class Reply:
    """One reply in progress. Iterate it for text pieces as they are sampled.

    When the iteration ends, normally or by an exception (Ctrl-C inside the engine), the text it
    produced joins the conversation. A consumer that may itself be interrupted while printing uses
    it as a context manager (`with session.reply(text) as r: ...`), which commits on the way out.
    """

    def __init__(self, session: Session, context: list[int], completion: Completion, *, header: str = ""):
        self.session = session
        self.context = context  # the ids this reply continues
        self.completion = completion
        self.header = header  # a chat reply's speaker, for the front end to print before the text
        self.prompt_tokens = 0  # ids the prefill had to run (the rest came from the KV cache)
        self.prefill_seconds = 0.0
        self.seconds = 0.0  # sampling time after the prefill
        self.interrupted = False
        self.settings: Settings = session.settings
        self._committed = False

    def __iter__(self) -> Iterator[str]:
        try:
            t0 = time.perf_counter()
            self.prompt_tokens = self.session.engine.prefill(self.context)
            t1 = time.perf_counter()
            self.prefill_seconds = t1 - t0
            for piece in self.completion:
                self.seconds = time.perf_counter() - t1
                yield piece
            self.seconds = time.perf_counter() - t1
        except BaseException:
            self.interrupted = True
            raise
        finally:
            self.commit()

    def __enter__(self) -> Reply:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.interrupted = True
        self.commit()

    def commit(self) -> None:
        """Put what was produced into the conversation (once)."""
        if not self._committed:
            self._committed = True
            self.session._commit(self)

    @property
    def text(self) -> str:
        return self.completion.text

    @property
    def tokens(self) -> int:
        return len(self.completion.ids)

    @property
    def tokens_per_second(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def stop_reason(self) -> str | None:
        """Why it ended: "length", "stop", or None when it was interrupted."""
        return self.completion.stop_reason


def corpus_source(ckpt: Checkpoint) -> str | None:
    """What to pass resolve_corpus to get the corpus a checkpoint records."""
    if not ckpt.corpus:
        return None
    return ckpt.corpus.get("source") or ckpt.corpus.get("name")


def human_count(n: int) -> str:
    for unit, size in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


class Session:
    """The state of one conversation with a model, and everything the slash commands do to it."""

    def __init__(
        self,
        ckpt: Checkpoint,
        *,
        settings: Settings | None = None,
        engine_options: dict | None = None,
        threads: int | None = None,
    ):
        self.settings = settings or Settings()
        self.engine_options = dict(engine_options or {})  # Engine's compile= and quantize=, for every model used
        self.requested_threads = threads  # --threads or /threads N; None: measured for each model (threads.py)
        self.conversation = Conversation(ckpt.tokenizer, ckpt.config.block_size)
        self.corpus: str | None = corpus_source(ckpt)  # what /train and /tokenizer fit to (a name or a path)
        self.turn = 0  # replies sampled so far (regenerations included): the second half of each seed
        self.tokens_generated = 0
        self.steps_trained = 0  # optimizer steps this session applied to the current weights
        self.last_reply: Reply | None = None
        self._use(ckpt)

    # --- the model ---------------------------------------------------------------------------

    def _use(self, ckpt: Checkpoint, *, reencode: bool = False) -> None:
        """Serve ckpt's model; reencode: the conversation may be in another vocabulary (see Conversation.use)."""
        self.ckpt = ckpt
        self.engine = Engine(ckpt.model, **self.engine_options)
        self.threads = choose_decode_threads(self.engine, self.requested_threads)
        self.conversation.use(ckpt.tokenizer, ckpt.config.block_size, reencode=reencode)

    def set_threads(self, count: int | None) -> ThreadChoice:
        """Decode with count threads from now on; None measures again for this model (and empties the KV cache)."""
        self.requested_threads = count
        self.threads = choose_decode_threads(self.engine, count)
        return self.threads

    @property
    def train_threads(self) -> int:
        """/train's thread count: the user's, or torch's default (a measured count is for decoding only)."""
        return self.threads.count if self.threads.fixed else DEFAULT_THREADS

    @property
    def tokenizer(self) -> Tokenizer:
        return self.ckpt.tokenizer

    @property
    def device(self) -> torch.device:
        return self.engine.device

    @property
    def block_size(self) -> int:
        return self.ckpt.config.block_size

    def _replace_model(self, ckpt: Checkpoint) -> None:
        """Switch to another checkpoint, carrying the conversation over as text when the vocabulary changes."""
        self._use(ckpt, reencode=True)
        self.steps_trained = 0

    # --- the conversation (conversation.py) ---------------------------------------------------

    @property
    def chat(self) -> tuple[str, str] | None:
        """(the user's speaker, the model's speaker) in /chat mode, else None."""
        return self.conversation.speakers

    def set_chat(self, speakers: tuple[str, str] | None) -> None:
        self.conversation.speakers = speakers

    @property
    def notices(self) -> list[str]:
        """What the user should hear about but did not ask for, not yet shown (see Conversation)."""
        return self.conversation.notices

    def take_notices(self, *, unknown_only: bool = False) -> list[str]:
        """The notices not yet shown, in order; unknown_only: just those naming what the vocabulary lacks."""
        return self.conversation.take_notices(unknown_only=unknown_only)

    def reply(self, text: str) -> Reply:
        """Continue the conversation with text (a chat line in /chat mode) and sample a reply."""
        return self._sample(self.conversation.prompt_ids(text))

    def regen(self) -> Reply:
        """Sample the last reply again (the next turn's seed, so a different one unless greedy)."""
        return self._sample(self.conversation.regen_ids())

    def _sample(self, context: list[int]) -> Reply:
        s = self.settings
        generator = torch.Generator(device=self.device).manual_seed(turn_seed(s.seed, self.turn))
        self.turn += 1
        # every reply keeps each token's distribution as the decode step left it (a reference, nothing
        # computed), so /why can explain any reply and /probs read it as it streams
        completion = Completion(
            self.engine,
            self.tokenizer,
            context,
            s,
            generator=generator,
            extra_stop=self.conversation.reply_stops,
            logprobs=MAX_TOP_LOGPROBS,
        )
        reply = Reply(self, context, completion, header=self.conversation.reply_header)
        reply.settings = replace(s)  # as sampled: /why compares against these, whatever /temp says later
        return reply

    def _commit(self, reply: Reply) -> None:
        self.conversation.commit(reply.context, reply.completion.ids, reply.completion.text)
        self.tokens_generated += len(reply.completion.ids)
        self.last_reply = reply

    def clear(self) -> None:
        """Forget the conversation; keep the model and the settings."""
        self.conversation.clear()
        self.engine.reset()

    def reseed(self, seed: int) -> None:
        """A new seed restarts the turn count, so `/seed N` then the same prompts replays a session."""
        self.settings.seed = seed
        self.turn = 0

    # --- vocabularies, checkpoints, corpora ---------------------------------------------------

    def switch_tokenizer(self, name: str) -> str:
        """Use the model for another vocabulary: the shipped one where it exists, else a fresh model
        of the current architecture fitted to the current corpus. Returns what happened, in words."""
        if name == self.tokenizer.name:
            return f"already using the {name} vocabulary ({self.tokenizer.vocab_size:,} tokens)"
        shipped = shipped_checkpoint(name)
        if shipped is not None:
            self.load(shipped)
            return f"{name} vocabulary: the shipped model {shipped.name} ({self.describe_model()})"
        from ..data import iter_text, resolve_corpus
        from ..data.learned import learned_tokenizer
        from ..model.gpt import build_model
        from ..tokenizers import fit_tokenizer

        if self.corpus is None:
            raise ScratchGPTError(f"no corpus to fit a {name} vocabulary to; choose one with /corpus NAME|PATH")
        corpus = resolve_corpus(self.corpus)
        # a BPE is learned from the training split (and cached), as `scratchgpt train --tokenizer bpe` learns it
        tokenizer = learned_tokenizer(corpus) if name == "bpe" else fit_tokenizer(name, iter_text(corpus))
        config = replace(self.ckpt.config, vocab_size=tokenizer.vocab_size)
        with torch.random.fork_rng(devices=[]):  # a reproducible init that leaves the global RNG alone
            torch.manual_seed(self.settings.seed)
            model = build_model(config).to(self.device)
        self._replace_model(Checkpoint(model=model, tokenizer=tokenizer, corpus=corpus_record(corpus, self.corpus)))
        return (
            f"{name} vocabulary: a fresh model ({self.describe_model()}) fitted to {corpus.name} — "
            "untrained — /train N to train it"
        )

    def load(self, path: str | Path) -> Checkpoint:
        """Replace model, tokenizer and engine with a checkpoint's; the conversation carries over."""
        ckpt = load_checkpoint(Path(path).expanduser(), device=self.device)
        self._replace_model(ckpt)
        self.corpus = corpus_source(ckpt) or self.corpus
        return ckpt

    def _model_name(self) -> str:
        stem = self.ckpt.path.stem if self.ckpt.path else f"scratch-{self.tokenizer.name}"
        return stem.split("+")[0]  # one timestamp, not one per generation of saves

    def default_save_path(self) -> Path:
        from ..core.paths import user_checkpoint_dir

        return user_checkpoint_dir() / f"{self._model_name()}+{datetime.now():%Y%m%d-%H%M%S}.safetensors"

    def save(self, path: str | Path | None = None, *, force: bool = False) -> Path:
        """Write the model as it is now (atomically); None picks a timestamped name in the user's
        checkpoint dir, a directory the model's name in it. A file that is not a checkpoint is never
        replaced, a checkpoint only with force. Missing folders are made (the front end says so)."""
        target = Path(path).expanduser() if path else self.default_save_path()
        if target.is_dir():  # the model's name in it, a timestamp added only when that file exists
            named = target / f"{self._model_name()}.safetensors"
            target = target / self.default_save_path().name if named.exists() else named
        check_replaceable(target, force=force, how=f"/save {target} --force replaces it")
        ckpt = self.ckpt
        save_checkpoint(target, ckpt.model, self.tokenizer, corpus=ckpt.corpus, provenance=ckpt.provenance)
        self.ckpt = replace(self.ckpt, path=target)
        self.steps_trained = 0
        return target

    def set_corpus(self, source: str) -> str:
        """Make source (a registered name or a path) the corpus /train and /tokenizer use."""
        from ..data import resolve_corpus

        corpus = resolve_corpus(source)
        self.corpus = source
        return f"{corpus.name} ({corpus.size:,} bytes)"

    # --- training ----------------------------------------------------------------------------

    def train(
        self,
        steps: int,
        corpus: str | None = None,
        *,
        on_start: Callable[[], None] | None = None,
        on_step: Callable[[StepInfo], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        interrupt: InterruptFlag | None = None,
        eval_iters: int = FINE_TUNE_EVAL_ITERS,
    ) -> FineTuneReport:
        """Fine-tune the loaded model for `steps` steps on corpus (default: the session's corpus);
        see training.finetune.fine_tune, which does the work. on_start is called when the first step is
        about to run, on_step after each, on_note with what takes a while (measuring the losses).

        The weights change in memory only; the checkpoint's record (step, val loss, corpus, where
        the weights came from) follows them, so /show and /save tell what was just measured.
        Whatever ends training, the weights are those after the last whole step, and the KV cache
        of the old weights is dropped (an int8 engine is rebuilt from the new ones), so a reply can
        follow at once.
        """
        from ..training.finetune import fine_tune

        source = corpus or self.corpus
        if source is None:
            raise ScratchGPTError("no corpus to train on; give one: /train N CORPUS (a name or a path)")
        start, done = self.ckpt, []

        def ready(ckpt: Checkpoint) -> None:
            if ckpt.model is not self.ckpt.model:
                self._use(ckpt)  # a grown vocabulary keeps the old characters' ids: the conversation stays valid
            else:
                self.ckpt = ckpt
            self.corpus = source
            if on_start is not None:
                on_start()

        def step_done(info: StepInfo) -> None:
            done.append(info)
            if on_step is not None:
                on_step(info)

        report = None
        try:
            report = fine_tune(
                self.ckpt,
                source,
                steps,
                seed=turn_seed(self.settings.seed, 10**6 + self.steps_trained),
                on_ready=ready,
                on_step=step_done,
                on_note=on_note,
                interrupt=interrupt,
                eval_iters=eval_iters,
            )
        finally:
            self._after_training(report, start, len(done))
        return report

    def _after_training(self, report: FineTuneReport | None, start: Checkpoint, steps: int) -> None:
        """Record what `steps` whole steps did (report is None when training ended in an error),
        and make the engine serve the new weights."""
        from ..training.finetune import fine_tuned_record

        if report is not None:
            self.ckpt = replace(self.ckpt, provenance=report.ckpt.provenance)
        elif steps:  # an error after some steps: they count, and no loss was measured for them
            record = fine_tuned_record(
                self.ckpt.provenance, start=start, steps=steps, corpus=self.ckpt.corpus, after=None
            )
            self.ckpt = replace(self.ckpt, provenance=record)
        if self.engine.copies_weights:  # an int8 copy of the old weights: quantize the new ones
            self._use(self.ckpt)
        else:
            self.engine.reset()  # the cached keys and values belong to the old weights
        self.steps_trained += steps

    # --- reports -------------------------------------------------------------------------------

    def describe_model(self) -> str:
        config = self.ckpt.config
        return (
            f"{human_count(self.ckpt.model.num_params())} parameters, {self.tokenizer.name} vocabulary of "
            f"{self.tokenizer.vocab_size:,}, {config.block_size}-token context"
        )

    def show(self, part: str | None = None) -> list[tuple[str, str]]:
        """The model (part "info"), then the settings ("parameters"), as (name, value) rows."""
        ckpt, config = self.ckpt, self.ckpt.config
        dtype = next(ckpt.model.parameters()).dtype
        val = ckpt.provenance.get("val_loss")
        sources = ckpt.provenance.get("exported_from")
        tuned = ckpt.provenance.get("fine_tunes")
        no_val = "unknown"
        if isinstance(sources, list):
            no_val = f"not recorded for an average of {len(sources)} checkpoints; scratchgpt eval scores it"
        if tuned:
            no_val = "not measured since /train; scratchgpt eval scores it"
        how = "estimated while training"
        if tuned and isinstance(tuned[-1], dict):
            how = f"measured after /train on {tuned[-1].get('corpus')}"
        unsaved = " (changed since, unsaved)" if self.steps_trained else ""
        arch = f"{config.n_layer} layers, {config.n_head} heads, {config.n_embd} wide"
        arch = "bigram" if config.arch == "bigram" else arch
        model = [
            ("checkpoint", (str(ckpt.path) if ckpt.path else "none: a fresh model, unsaved") + unsaved),
            ("parameters", f"{ckpt.model.num_params():,} ({arch})"),
            ("vocabulary", f"{self.tokenizer.name}, {self.tokenizer.vocab_size:,} tokens"),
            ("context", f"{config.block_size} tokens"),
            ("device", f"{self.device}, {str(dtype).removeprefix('torch.')}"),
            ("corpus", self.corpus or "none recorded"),
            (
                "val loss",
                f"{val:.4f}, {how}; scratchgpt eval scores the whole split"
                if isinstance(val, (int, float))
                else no_val,
            ),
        ]
        settings = [(name, self.setting_text(name)) for name in SETTING_NAMES]
        return {"info": model, "parameters": settings}.get(part, model + settings)

    def setting_text(self, name: str) -> str:
        """How one of SETTING_NAMES reads, in /show and in the answers of the command that sets it."""
        s = self.settings
        texts = {
            "temperature": lambda: f"{s.temperature:g}" + (" (greedy)" if s.temperature == 0 else ""),
            "length": lambda: f"{s.max_new_tokens} tokens",
            "top-k": lambda: "off" if s.top_k is None else str(s.top_k),
            "top-p": lambda: "off" if s.top_p is None else f"{s.top_p:g}",
            "seed": lambda: str(s.seed),
            "stop": lambda: ", ".join(repr(x) for x in s.stop) or "none",
            "chat": lambda: " and ".join(self.chat) if self.chat else "off",
            "verbose": lambda: "on" if s.verbose else "off",
            "probs": lambda: "on" if s.probs else "off",
            "threads": lambda: self.threads.describe(),
        }
        return texts[name]()

    def stats(self) -> list[tuple[str, str]]:
        """The session's counters and the last reply's speed, as (name, value) rows."""
        dropped = ", older ones dropped" if self.conversation.dropped else ""
        rows = [
            ("turns", str(self.turn)),
            ("tokens generated", f"{self.tokens_generated:,}"),
            ("conversation", f"{len(self.conversation.ids):,} tokens (window {self.block_size}{dropped})"),
            ("cached", f"{self.engine.cache.pos} tokens"),
            ("steps trained", f"{self.steps_trained} (unsaved)" if self.steps_trained else "0"),
        ]
        r = self.last_reply
        if r is not None:
            rows += [
                ("last reply", f"{r.tokens} tokens, {r.tokens_per_second:,.1f} tokens/s"),
                ("last prefill", f"{r.prompt_tokens} tokens in {r.prefill_seconds * 1000:.1f} ms"),
            ]
        return rows


def stats_line(session: Session, reply: Reply, *, verbose: bool) -> str:
    """The line after a reply: tokens, speed, temperature, seed (verbose: the prompt and prefill too)."""
    s = session.settings
    parts = [
        f"{reply.tokens} tokens",
        f"{reply.tokens_per_second:,.1f} tokens/s",
        f"temp {s.temperature:g}",
        f"seed {s.seed}",
    ]
    if verbose:
        cached = len(reply.context) - reply.prompt_tokens  # the KV cache already held them (a /regen: all but one)
        parts += [
            f"prompt {len(reply.context)} tokens" + (f" ({cached} cached)" if cached else ""),
            f"prefill {reply.prefill_seconds * 1000:.0f} ms",
        ]
    if reply.interrupted:
        parts.append("stopped")
    return " · ".join(parts)
