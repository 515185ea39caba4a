"""The slash commands, as one table: name, aliases, arguments, help, and one handler each.

`/help`, `/help CMD`, tab completion and argument errors all come from `COMMANDS`. A line is
handled in two steps: `parse(line)` turns it into an `Invocation` (the command and its checked
argument) or an error message, and never raises; `execute(host, invocation)` runs the handler.
Handlers talk to the user through a `Host` (the REPL, or a test's stand-in). What each argument may
be, and the errors that say so, are arguments.py's converters.

This module stays free of prompt_toolkit and rich so that importing it costs nothing.
"""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.cores import cpu_threads
from ..core.interrupt import InterruptFlag
from ..core.text import closest, counted, quoted_typed, terminal_safe
from ..model.sampling_settings import LENGTH, SEED, TEMPERATURE, TOP_K, TOP_P
from ..tokenizers import TOKENIZER_NAMES
from ..training.config import FINE_TUNE_BATCH_TOKENS
from .arguments import (
    AUTO,
    OFF,
    TRAIN_MAX,
    ArgError,
    chat_arg,
    command_arg,
    layer_arg,
    length_arg,
    no_arg,
    off_or,
    on_off_arg,
    optional,
    path_arg,
    position_arg,
    save_arg,
    seed_arg,
    set_arg,
    show_arg,
    stop_arg,
    temperature_arg,
    text_arg,
    threads_arg,
    tokenizer_arg,
    top_k_arg,
    top_p_arg,
    train_arg,
)
from .command_types import Command, Exit, Host
from .inspect_commands import do_attention, do_lens, do_probs, do_score, do_tokens, do_why

# --- handlers: (host, value) -> None ------------------------------------------------------------


def _show_or_set(host: Host, value: Any, setting: str, assign: Callable[[Any], None]) -> None:
    """Say the setting's value (value None), or assign value and say the new one."""
    if value is None:
        host.say(f"{setting} is {host.session.setting_text(setting)}")
    else:
        assign(value)
        host.say(f"{setting} set to {host.session.setting_text(setting)}")


def _hanging(text: str, indent: int, host: Host) -> str:
    """text wrapped to a terminal's width with its wrapped lines indented under its start; unwrapped elsewhere."""
    console = getattr(host, "console", None)
    if console is None or not console.is_terminal:
        return text
    return textwrap.fill(text, width=max(console.width, indent + 20), subsequent_indent=" " * indent)


def do_help(host: Host, command: Command | None) -> None:
    if command is None:
        width = max(len(c.signature) for c in COMMANDS)
        lines = ['Type text and the model continues it. Esc-Enter or """ starts multi-line input.']
        lines += [_hanging(f"  {c.signature:<{width}}  {c.summary}", width + 4, host) for c in COMMANDS]
        lines.append("Ctrl-C stops a reply; Ctrl-D or /bye exits. /help CMD tells more about one command.")
        host.say("\n".join(lines))
    else:
        aliases = f" (also {', '.join('/' + a for a in command.aliases)})" if command.aliases else ""
        paragraphs = [_hanging(f"  {text}", 2, host) for text in (command.summary, command.details)]
        host.say("\n".join([f"{command.signature}{aliases}", *paragraphs]))


def do_temp(host: Host, value: float | None) -> None:
    s = host.session.settings
    _show_or_set(host, value, "temperature", lambda v: setattr(s, "temperature", v))


def do_len(host: Host, value: int | None) -> None:
    s = host.session.settings
    _show_or_set(host, value, "length", lambda v: setattr(s, "max_new_tokens", v))


def do_topk(host: Host, value: int | str | None) -> None:
    s = host.session.settings
    _show_or_set(host, value, "top-k", lambda v: setattr(s, "top_k", None if v == OFF else v))


def do_topp(host: Host, value: float | str | None) -> None:
    s = host.session.settings
    _show_or_set(host, value, "top-p", lambda v: setattr(s, "top_p", None if v == OFF or v == 1 else v))


def do_seed(host: Host, value: int | None) -> None:
    session = host.session
    _show_or_set(host, value, "seed", session.reseed)


def do_stop(host: Host, value: str | None) -> None:
    s = host.session.settings

    def assign(v: str) -> None:
        if v == OFF:
            s.stop.clear()
        elif v not in s.stop:
            s.stop.append(v)

    if value is None:
        host.say(f"stop strings: {host.session.setting_text('stop')}")
    else:
        assign(value)
        host.say(f"stop strings now: {host.session.setting_text('stop')}")


def do_threads(host: Host, value: int | str | None) -> None:
    session = host.session
    if value is None:
        host.say(f"threads: {session.setting_text('threads')}")
    else:
        choice = session.set_threads(None if value == AUTO else value)
        host.say(f"threads set to {choice.describe()}")


def do_tokenizer(host: Host, name: str | None) -> None:
    session = host.session
    if name is None:
        host.say(f"vocabulary: {session.tokenizer.name}, {session.tokenizer.vocab_size:,} tokens")
        return
    if name == session.tokenizer.name or host.settle_unsaved():  # another model replaces the one /train changed
        host.say(session.switch_tokenizer(name))


def do_train(host: Host, value: tuple[int, str | None]) -> None:
    from ..cli.progress import TrainProgress, sparkline
    from ..model.threads import temporary_threads
    from ..training.start import vocab_growth

    steps, corpus = value
    session = host.session
    bar: list[TrainProgress] = []
    every = max(1, steps // 10)  # plain progress lines when the console is not a terminal
    shown = contextlib.ExitStack()  # the bar: from the first step (not before a corpus error) to the last

    def note(text: str) -> None:
        shown.close()  # a note after the steps (the measuring) goes below a finished bar, not above a live one
        host.say(text, style="dim")

    def start() -> None:  # the first step begins: the bar appears
        bar.append(shown.enter_context(TrainProgress(steps, console=host.console, every=every)))

    with temporary_threads(session.train_threads), shown:
        report = session.train(
            steps,
            corpus,
            on_start=start,
            on_step=lambda info: bar[0].step(info.step, info.loss, info.tokens),
            on_note=note,
            interrupt=InterruptFlag(),
        )
    if report.grown_vocab:
        old, new = report.grown_vocab
        host.say(vocab_growth(report.corpus, old, new))
    if report.steps == 0:
        host.say("stopped before the first step; the weights are unchanged")
        return
    done = counted(report.steps, "step") + (f" of {report.requested} (stopped early)" if report.interrupted else "")
    host.say(f"trained {done} on {report.corpus} in {report.seconds:.1f}s, {report.tokens_per_second:,.0f} tokens/s")
    if report.before and report.after:
        b, a = report.before, report.after
        host.say(f"train {b['train']:.4f} → {a['train']:.4f}, val {b['val']:.4f} → {a['val']:.4f}")
    else:
        host.say("the losses before and after were not measured (interrupted)", style="dim")
    host.say(f"loss per step {sparkline(report.losses)}")
    host.say("the weights changed in memory only; /save writes them", style="dim")


def do_corpus(host: Host, source: str | None) -> None:
    session = host.session
    if source is None:
        host.say(f"corpus: {session.corpus or 'none (set one with /corpus NAME|PATH)'}")
        return
    host.say(f"corpus set to {session.set_corpus(source)}; /train and /tokenizer use it")


def do_save(host: Host, value: tuple[str | None, bool]) -> None:
    path, force = value
    folders = {p for p in Path(path).expanduser().parents if not p.exists()} if path else set()
    saved = host.session.save(path, force=force)
    made = min((p for p in folders if p.exists()), key=lambda p: len(p.parts), default=None)  # the outermost
    host.say(f"saved {saved}" + (f" (made the folder {made})" if made else ""))


def do_load(host: Host, path: str) -> None:
    if not host.settle_unsaved():
        return
    ckpt = host.session.load(path)
    host.say(f"loaded {ckpt.path}: {host.session.describe_model()}")


def _rows(host: Host, rows: list[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in rows)
    host.say("\n".join(f"  {k:<{width}}  {terminal_safe(v)}" for k, v in rows))


def do_show(host: Host, part: str | None) -> None:
    _rows(host, host.session.show(part))


def do_set(host: Host, value: tuple[Command, Any]) -> None:
    command, converted = value
    command.handler(host, converted)


def do_stats(host: Host, _: None) -> None:
    _rows(host, host.session.stats())


def do_clear(host: Host, _: None) -> None:
    host.session.clear()
    host.say("conversation cleared (settings kept)")


def do_regen(host: Host, _: None) -> None:
    host.stream(host.session.regen())


def do_chat(host: Host, value: tuple[str, str] | str | None) -> None:
    session = host.session
    if value is None:
        host.say(f"chat: {' speaks to '.join(session.chat) if session.chat else 'off'}")
    elif value == OFF:
        session.set_chat(None)
        host.say("chat off: the model continues what you type")
    else:
        session.set_chat(value)
        you, model = value
        host.say(f"chat on: you speak as {you}, the model answers as {model} (/chat off to stop)")


def do_verbose(host: Host, value: bool | None) -> None:
    s = host.session.settings
    s.verbose = (not s.verbose) if value is None else value
    host.say(f"verbose {host.session.setting_text('verbose')}")


def do_bye(host: Host, _: None) -> None:
    raise Exit


# --- the table --------------------------------------------------------------------------------


def lookup(name: str) -> Command | None:
    """The command called name (or one of its aliases), any case; None when there is none."""
    return BY_NAME.get(name.lower())


COMMANDS: tuple[Command, ...] = (
    Command(
        name="help",
        aliases=("?",),
        usage="[CMD]",
        summary="list the commands, or explain one",
        details="/help CMD shows one command's details.",
        convert=optional(command_arg(lookup)),
        handler=do_help,
        complete="command",
    ),
    Command(
        name="temp",
        usage="[T]",
        summary="sampling temperature (0 = greedy)",
        details=f"Divides the logits by T ({TEMPERATURE.span()}) before sampling; 0 always picks the likeliest token.",
        convert=optional(temperature_arg),
        handler=do_temp,
    ),
    Command(
        name="len",
        usage="[N]",
        summary="longest reply, in tokens",
        details=f"Replies stop after N new tokens ({LENGTH.span()}).",
        convert=optional(length_arg),
        handler=do_len,
    ),
    Command(
        name="topk",
        usage="[K|off]",
        summary="sample among the K likeliest tokens",
        details=f"Only the K likeliest tokens can be sampled ({TOP_K.span()}); off allows all.",
        convert=optional(off_or(top_k_arg)),
        handler=do_topk,
    ),
    Command(
        name="topp",
        usage="[P|off]",
        summary="nucleus sampling with mass P",
        details=f"Only the smallest set of tokens whose probabilities add up to P ({TOP_P.span()}) can be sampled.",
        convert=optional(off_or(top_p_arg)),
        handler=do_topp,
    ),
    Command(
        name="seed",
        usage="[N]",
        summary="random seed of this session",
        details=(
            f"The seed ({SEED.span()}) of every reply's sampler; setting it restarts the turn count, so the "
            "same prompts give the same replies."
        ),
        convert=optional(seed_arg),
        handler=do_seed,
    ),
    Command(
        name="stop",
        usage="[TEXT|off]",
        summary=r"stop a reply at TEXT (escapes like \n\n work)",
        details=r"Adds a stop string; a reply ends before it. Escapes: \n, \t, \\. /stop off removes them all.",
        convert=optional(off_or(stop_arg)),
        handler=do_stop,
    ),
    Command(
        name="threads",
        usage="[N|auto]",
        summary="CPU threads for decoding",
        details=(
            f"Decode with N threads (1 to {cpu_threads()}); auto measures which count is fastest for this model, as "
            "at load. /train uses N too, or torch's default under auto."
        ),
        convert=optional(threads_arg),
        handler=do_threads,
    ),
    Command(
        name="tokenizer",
        usage=f"[{'|'.join(TOKENIZER_NAMES)}]",
        summary="switch vocabulary (and model)",
        details=(
            "Loads the shipped model for that vocabulary, or makes a fresh untrained one fitted to the corpus. "
            "The conversation carries over, re-encoded. Weights /train changed and nobody saved are asked about "
            "first."
        ),
        convert=optional(tokenizer_arg),
        handler=do_tokenizer,
        complete="tokenizer",
    ),
    Command(
        name="train",
        usage="N [CORPUS]",
        summary="fine-tune for N steps, here and now",
        details=(
            f"Trains the loaded model for N steps (1 to {TRAIN_MAX}) on the current corpus or CORPUS (a name or "
            f"a path; new characters grow a char vocabulary), about {FINE_TUNE_BATCH_TOKENS:,} tokens a step. "
            "Ctrl-C stops early and keeps the steps done. Weights change in memory only: /save writes them."
        ),
        convert=train_arg,
        handler=do_train,
        complete="corpus",
    ),
    Command(
        name="corpus",
        usage="[NAME|PATH]",
        summary="the corpus /train and /tokenizer use",
        details="A registered corpus name (tinyshakespeare) or the path of a UTF-8 text file.",
        convert=optional(path_arg),
        handler=do_corpus,
        complete="corpus",
    ),
    Command(
        name="save",
        usage="[PATH] [--force]",
        summary="write the model to a checkpoint",
        details=(
            "Writes the weights as they are now, with vocabulary, corpus and val loss, atomically; without PATH, "
            "to a timestamped file in your checkpoint directory. A checkpoint already at PATH is replaced only "
            "with --force; any other file, never."
        ),
        convert=save_arg,
        handler=do_save,
        complete="path",
    ),
    Command(
        name="load",
        usage="PATH",
        summary="load a checkpoint",
        details=(
            "Replaces model and vocabulary; the conversation carries over. "
            "Weights /train changed and nobody saved are asked about first."
        ),
        convert=path_arg,
        handler=do_load,
        complete="path",
    ),
    Command(
        name="show",
        usage="[info|parameters]",
        summary="the model and the settings",
        details=(
            "Checkpoint, parameters, vocabulary, "
            "context, device, corpus and validation loss (info), then every setting (parameters)."
        ),
        convert=show_arg,
        handler=do_show,
    ),
    Command(
        name="set",
        usage="[parameter] NAME VALUE",
        summary="ollama's way to set temperature, num_predict, top_k, ...",
        details=(
            "As in ollama: /set parameter temperature 0.7 is /temp 0.7; num_predict is /len, top_k /topk, "
            "top_p /topp, seed /seed, stop /stop. /set verbose and /set quiet are /verbose on and off."
        ),
        convert=set_arg(lookup),
        handler=do_set,
    ),
    Command(
        name="stats",
        usage="",
        summary="counters and the last reply's speed",
        details="Turns, tokens, cache use, tokens/s.",
        convert=no_arg,
        handler=do_stats,
    ),
    Command(
        name="clear",
        aliases=("reset",),
        usage="",
        summary="forget the conversation",
        details="Empties the context; settings stay.",
        convert=no_arg,
        handler=do_clear,
    ),
    Command(
        name="regen",
        usage="",
        summary="sample the last reply again",
        details="Replaces the last reply with a new sample.",
        convert=no_arg,
        handler=do_regen,
    ),
    Command(
        name="chat",
        usage="[SPEAKER1 SPEAKER2|off]",
        summary="talk as SPEAKER1, the model answers as SPEAKER2",
        details=(
            "Each line you type becomes SPEAKER1's speech in the corpus's layout and the model speaks for "
            "SPEAKER2 until the speech ends. Quote names with spaces. /chat off returns to plain continuation."
        ),
        convert=optional(chat_arg),
        handler=do_chat,
        complete="chat",
    ),
    Command(
        name="probs",
        usage="[on|off]",
        summary="shade each new token by its probability",
        details=(
            "Each token of the next replies is shaded by the probability the model gave it, on a log scale in "
            "colours colour-blind readers tell apart (a legend shows when it turns on); plain text when piped or "
            "under NO_COLOR. Without an argument it toggles."
        ),
        convert=optional(on_off_arg),
        handler=do_probs,
    ),
    Command(
        name="why",
        usage="[N]",
        summary="the alternatives at token N of the last reply",
        details=(
            "Ranks the likeliest tokens at token N of the last reply (1 = first, -1 = last, the default): their "
            "probability and log-probability as the model gave them (temperature 1), beside the probability "
            "after this session's temperature, top-k and top-p; the chosen one marked; the entropy in bits."
        ),
        convert=optional(position_arg),
        handler=do_why,
    ),
    Command(
        name="tokens",
        usage="TEXT",
        summary="how the model in use splits TEXT into tokens",
        details=(
            "TEXT split as this model's vocabulary splits it: tokens shaded alternately (between bars without "
            "colour), spaces as ·, line breaks as ↵, then the count and characters a token."
        ),
        convert=text_arg,
        handler=do_tokens,
    ),
    Command(
        name="score",
        usage="TEXT",
        summary="how surprised the model is by TEXT",
        details=(
            "TEXT shaded by each token's probability, then bits and nats per char, perplexity, and the most "
            "surprising tokens with what the model expected there. Longer than the window: a sliding window."
        ),
        convert=text_arg,
        handler=do_score,
    ),
    Command(
        name="attention",
        usage="[LAYER]",
        summary="where the last position of the conversation looks",
        details=(
            "For each layer (or LAYER only) and head, the five tokens of the conversation's window that the "
            "last position attends to most, with their weights. scratchgpt inspect --png draws every map."
        ),
        convert=optional(layer_arg),
        handler=do_attention,
    ),
    Command(
        name="lens",
        usage="",
        summary="what each layer would predict next (the logit lens)",
        details=(
            "The residual stream after the embeddings and after each block, put through the final norm and the "
            "head: each layer's likeliest next tokens and the probability it gives the model's final choice."
        ),
        convert=no_arg,
        handler=do_lens,
    ),
    Command(
        name="verbose",
        usage="[on|off]",
        summary="more detail after each reply",
        details=("Adds prompt tokens and prefill time to the line after each reply; without an argument it toggles."),
        convert=optional(on_off_arg),
        handler=do_verbose,
    ),
    Command(
        name="bye",
        aliases=("exit", "quit"),
        usage="",
        summary="leave (as does Ctrl-D)",
        details="Exits with code 0.",
        convert=no_arg,
        handler=do_bye,
    ),
)

BY_NAME = {n: c for c in COMMANDS for n in (c.name, *c.aliases)}


@dataclass(frozen=True)
class Invocation:
    command: Command
    value: Any


def is_command(line: str) -> bool:
    """A line for the command table: starts with "/" (but "//text" is text that starts with "/")."""
    stripped = line.lstrip()
    return stripped.startswith("/") and not stripped.startswith("//")


def unknown_message(name: str) -> str:
    message = f"Unknown command {quoted_typed('/' + name)}. Type /? for help."
    close = closest(name, list(BY_NAME))
    return message + (f" Did you mean /{close}?" if close else "")


def parse(line: str) -> Invocation | str:
    """The invocation a command line asks for, or one line saying what is wrong. Never raises."""
    try:
        parts = line.strip().removeprefix("/").split(None, 1)  # any whitespace, a pasted newline too
        name = parts[0] if parts else ""
        rest = parts[1].strip() if len(parts) > 1 else ""
        command = lookup(name)
        if command is None:
            return unknown_message(name)
        try:
            return Invocation(command, command.convert(rest))
        except ArgError as e:
            return f"/{command.name} {e}. Usage: {command.signature}"
    except Exception as e:  # a converter bug must not end the session; say so instead
        return f"could not read that command ({type(e).__name__}); type /? for help"


def execute(host: Host, invocation: Invocation) -> None:
    """Run a parsed command. User errors (bad path, missing corpus) come out as ScratchGPTError."""
    invocation.command.handler(host, invocation.value)
