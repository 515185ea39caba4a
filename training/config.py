"""`TrainConfig`: one training run's whole description, every setting defined once.

Each field carries its help text and the type of its flag, so `scratchgpt train`'s flags, the
defaults `--help` shows, a recipe file's keys (`recipes/*.toml`) and the config a run saves for
`--resume` all derive from this one class. Precedence: the defaults here, then a recipe file
(`--config`), then the flags typed (or, with `--resume`, the saved run's config, then the flags).

A few defaults are None, meaning "decided when the run starts" (the help says how): the heads of a
new model (FRESH_N_HEAD, or the count nearest it that divides --n-embd), the context
length and dropout of a fine-tune are its checkpoint's, a fine-tune's batch holds about
FINE_TUNE_BATCH_TOKENS tokens, and --grad-accum defaults to one micro-batch per process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.bounds import SEED_MAX, BadValue, Number, real, whole
from ..core.cores import cpu_threads
from ..core.errors import ScratchGPTError
from ..core.text import closest, quoted_arg
from ..tokenizers import TOKENIZER_NAMES

# Far beyond what a run on one machine uses, and small enough that nothing overflows or allocates
# without end before the run can say what is wrong (a block size past the corpus is caught later).
WIDTH_MAX = 65_536  # --n-embd, --block-size, --batch-size, --grad-accum
DEPTH_MAX = 1024  # --n-layer, --n-head
STEPS_MAX = 10**9  # --max-iters and the other step counts: years of training
VOCAB_MAX = 1 << 20  # --vocab-size
MINUTES_MAX = 10**6  # --save-every

ACTIVATIONS = ("relu2", "gelu", "gelu_tanh")  # model/gpt.py's, spelled here so --help needs no torch
FRESH_BLOCK_SIZE = 128  # a new model's context when --block-size is not given
FRESH_BATCH_SIZE = 16  # a new model's sequences per micro-batch when --batch-size is not given
FRESH_DROPOUT = 0.0
FRESH_N_HEAD = 4  # a new model's attention heads when --n-head is not given and it divides --n-embd
# A fine-tune's default batch, in tokens rather than sequences, so that a /train step costs about
# the same whatever the model's context length (bench/repl_train.py times it).
FINE_TUNE_BATCH_TOKENS = 2048
FINE_TUNE_EVAL_ITERS = 10  # batches per split for /train's before/after losses


def heads_for(n_embd: int, n_head: int | None) -> int:
    """--n-head as given, else FRESH_N_HEAD or, when that does not divide n_embd, the divisor nearest it."""
    if n_head is not None:
        return n_head
    divisors = [h for h in range(1, min(n_embd, DEPTH_MAX) + 1) if n_embd % h == 0]
    return min(divisors, key=lambda h: (abs(h - FRESH_N_HEAD), -h))


def vocabulary(text: str) -> str:
    """--tokenizer: one of TOKENIZER_NAMES, or the path of a tokenizer file (*.json)."""
    if text in TOKENIZER_NAMES or text.endswith(".json"):
        return text
    meant = closest(text, list(TOKENIZER_NAMES))
    hint = f"did you mean {meant!r}? " if meant else ""
    raise BadValue(f"{quoted_arg(text)} is no vocabulary; {hint}use one of {', '.join(TOKENIZER_NAMES)} or a FILE.json")


def out_path(text: str) -> str:
    """--out: a file path (its parent is created), not a directory, existing or written as one ("new/")."""
    if not text or Path(text).is_dir() or text.endswith(("/", os.sep)):
        raise BadValue(
            f"expected a checkpoint file path, got the directory {quoted_arg(text or '.')}; "
            "name a file in it, e.g. ckpt.safetensors"
        )
    return text


def setting(
    default: Any,
    help: str,
    *,
    type: Callable | None = None,
    choices: tuple | None = None,
    repeat: bool = False,
    show_default: bool = True,
) -> Any:
    """A TrainConfig field: its default, help, and how its flag parses (type or choices)."""
    meta = {"help": help, "type": type, "choices": choices, "repeat": repeat, "show_default": show_default}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: tuple(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    # --- data -------------------------------------------------------------------------------
    corpus: str = setting("tinyshakespeare", "registered corpus name or path to a UTF-8 text file")
    tokenizer: str = setting(
        "char",
        f"vocabulary: {', '.join(TOKENIZER_NAMES)} (a byte-level BPE learned from the "
        "training split), or a FILE.json from `scratchgpt tokenizer train`",
        type=vocabulary,
    )
    vocab_size: int | None = setting(
        None,
        "ids the vocabulary keeps: word, words (default 8192); bpe, bytes, merges and <|endoftext|> (default 4096)",
        type=whole(2, VOCAB_MAX),
    )
    lossy: bool = setting(False, "read a corpus that is not valid UTF-8, replacing bad bytes")
    # --- model (a fine-tune or a resumed run takes these from its checkpoint) ----------------
    arch: str = setting(
        "gpt",
        "model: transformer; gpt2, GPT-2's layout of it (learned positions, biases, tanh "
        "GELU, tied head; with --tokenizer tiktoken GPT-2's full vocabulary, so export --format hf "
        "takes it); or the bigram baseline",
        choices=("gpt", "gpt2", "bigram"),
    )
    n_layer: int = setting(4, "transformer blocks", type=whole(1, DEPTH_MAX))
    n_head: int | None = setting(
        None,
        f"attention heads (default {FRESH_N_HEAD}, or the count nearest it that divides --n-embd)",
        type=whole(1, DEPTH_MAX),
    )
    n_embd: int = setting(128, "model width", type=whole(1, WIDTH_MAX))
    block_size: int | None = setting(
        None,
        f"context length in tokens (default {FRESH_BLOCK_SIZE}; with --init-from, the checkpoint's)",
        type=whole(1, WIDTH_MAX),
    )
    rope: bool = setting(True, "rotary position embeddings (--no-rope: learned absolute positions)")
    positions: bool = setting(True, "position information (--no-positions: none, the causal mask alone tells order)")
    mlp: bool = setting(True, "a feed-forward layer in each block (--no-mlp: attention alone)")
    residual: bool = setting(True, "residual connections (--no-residual: each part's output replaces its input)")
    norms: bool = setting(True, "LayerNorm before each part and the head (--no-norms: none)")
    qk_norm: bool = setting(True, "RMS norm on queries and keys")
    activation: str = setting("relu2", "MLP activation", choices=ACTIVATIONS)  # model.gpt's; a test checks
    tie_embeddings: bool = setting(False, "share token embedding and LM head weights")
    bias: bool = setting(False, "biases in Linear layers")
    dropout: float | None = setting(
        None,
        f"dropout probability (default {FRESH_DROPOUT:g}; with --init-from, the checkpoint's)",
        type=real(0, 1, high_open=True),
    )
    attn_dropout: float | None = setting(
        None,
        "dropout on attention weights (default: --dropout's; 0 keeps CPU attention on its fast kernel)",
        type=real(0, 1, high_open=True),
    )
    # --- optimisation ------------------------------------------------------------------------
    batch_size: int | None = setting(
        None,
        f"sequences per micro-batch (default {FRESH_BATCH_SIZE}; with "
        f"--init-from, about {FINE_TUNE_BATCH_TOKENS} tokens a step)",
        type=whole(1, WIDTH_MAX),
    )
    grad_accum: int | None = setting(
        None, "micro-batches per step, summed over processes (default: one per process)", type=whole(1, WIDTH_MAX)
    )
    max_iters: int = setting(2000, "optimizer steps in the whole run", type=whole(1, STEPS_MAX))
    max_minutes: float | None = setting(
        None,
        "end the run within this many minutes, set-up, compilation and "
        "evaluations included: once its first steps are timed, --max-iters "
        "becomes the steps that fit (the lr schedule spans them)",
        type=real(0, 10**7, low_open=True),
    )
    lr: float = setting(1e-3, "peak learning rate", type=real(0, 10, low_open=True))
    lr_decay_iters: int | None = setting(
        None, "steps the lr schedule spans (default --max-iters)", type=whole(1, STEPS_MAX)
    )
    min_lr_ratio: float = setting(0.1, "final lr as a fraction of --lr", type=real(0, 1))
    warmup_iters: int = setting(100, "linear warmup steps", type=whole(0, STEPS_MAX))
    schedule: str = setting("cosine", "lr decay after warmup", choices=("cosine", "wsd"))
    decay_frac: float = setting(0.2, "wsd: the last fraction of steps, where lr decays", type=real(0, 1, low_open=True))
    optimizer: str = setting(
        "adamw", "adamw, or muon for the blocks' matrices (AdamW for the rest)", choices=("adamw", "muon")
    )
    weight_decay: float = setting(0.1, "weight decay on matrices", type=real(0, 10))
    beta2: float = setting(0.99, "AdamW beta2", type=real(0, 1, high_open=True))
    grad_clip: float = setting(1.0, "clip gradient norm (0 = off)", type=real(0, 1e6))
    seed: int = setting(1337, "random seed", type=whole(0, SEED_MAX))
    # --- distillation ------------------------------------------------------------------------
    teacher: tuple[str, ...] = setting(
        (),
        "distil: learn this checkpoint's next-token distribution; repeat to average several (one vocabulary)",
        repeat=True,
        show_default=False,
    )
    teacher_pass: str | None = setting(
        None,
        "online (default): teachers read each training window; once: they score the training split first",
        choices=("online", "once"),
    )
    distill_weight: float | None = setting(
        None,
        "with --teacher: the loss's share on the teachers' distribution, the rest on the text (default 1)",
        type=real(0, 1),
    )
    # --- evaluation, saving and logging ------------------------------------------------------
    eval_interval: int = setting(250, "steps between evaluations (each one saves)", type=whole(1, STEPS_MAX))
    eval_iters: int = setting(20, "batches per split in each evaluation", type=whole(1, 100_000))
    log_interval: int = setting(10, "steps between metrics lines", type=whole(1, STEPS_MAX))
    save_every: float = setting(
        10.0,
        "also save the latest state every this many minutes, so a kill or a "
        "power cut loses at most that (0 = only at evaluations)",
        type=real(0, MINUTES_MAX),
    )
    out: str = setting("out/ckpt.safetensors", "checkpoint path; siblings hold resume state and metrics", type=out_path)
    init_from: str | None = setting(None, "fine-tune this checkpoint (grows a char vocabulary)")
    wandb: bool = setting(False, "also log to Weights & Biases (offline unless logged in and online)")
    tensorboard: bool = setting(False, "also write TensorBoard event files next to --out (X.tb/)")
    # --- how this process runs (not part of the run: --resume does not carry them over) ------
    device: str = setting("auto", "auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps")
    amp: str = setting("auto", "autocast: auto = bf16 where fast", choices=("auto", "bf16", "fp32"))
    compile: bool = setting(False, "torch.compile the blocks: ~30 s once, then faster steps")
    threads: int | None = setting(None, "CPU threads torch uses (default: one per core)", type=whole(1, cpu_threads()))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["teacher"] = list(self.teacher)
        return d

    @classmethod
    def from_dict(cls, values: dict, *, where: str = "the config") -> TrainConfig:
        """A config from plain values (a recipe file, a saved run), each checked as its flag would be."""
        return cls(**checked(values, where=where))


# Settings of this process, not of the run: a resumed run takes them from its own command line.
PROCESS_SETTINGS = ("device", "amp", "compile", "threads", "out")
FIELDS = {f.name: f for f in fields(TrainConfig)}


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def checked(values: dict, *, where: str) -> dict:
    """values with each one validated like its flag; an unknown key or bad value is one line."""
    out = {}
    for key, value in values.items():
        name = key.replace("-", "_")
        if name not in FIELDS:
            raise ScratchGPTError(f"{where}: unknown setting '{key}'; see scratchgpt train --help for the settings")
        out[name] = _checked_value(FIELDS[name], value, where)
    return out


def default_of(f: Field) -> Any:
    """A TrainConfig field's default value."""
    return f.default if f.default is not MISSING else f.default_factory()


def _checked_value(f: Field, value: Any, where: str) -> Any:
    meta, default = f.metadata, default_of(f)
    problem = None
    if value is None:
        problem = None if default is None else "must be given a value"
    elif meta["repeat"]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            problem = "must be a list of paths"
        else:
            value = tuple(value)
    elif isinstance(default, bool):
        if not isinstance(value, bool):
            problem = "must be true or false"
    elif meta["choices"]:
        if value not in meta["choices"]:
            problem = f"must be one of {', '.join(meta['choices'])}"
    elif isinstance(meta["type"], Number):
        number: Number = meta["type"]
        ok = isinstance(value, int) if number.whole else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or not number.allows(value):
            problem = f"must be {number.describe()}"
        elif not number.whole:
            value = float(value)
    elif meta["type"] is not None or isinstance(default, str) or default is None:
        if not isinstance(value, str):
            problem = "must be a string"
        elif meta["type"] is not None:
            try:
                value = meta["type"](value)
            except BadValue as e:
                problem = str(e)
    if problem:
        raise ScratchGPTError(f"{where}: {f.name} {problem}, got {quoted_arg(repr(value))}")
    return value


def recipe_path(name: str | Path) -> Path:
    """A recipe file: the path given, else the shipped recipe of that name (`nanogpt-cpu`: recipes/nanogpt-cpu.toml)."""
    from ..core.paths import PACKAGE_DIR

    path = Path(name).expanduser()
    if path.exists():
        return path
    shipped = PACKAGE_DIR / "recipes" / Path(str(name).removeprefix("recipes/"))
    for candidate in (shipped, shipped.with_name(shipped.name + ".toml")):
        if candidate.is_file():
            return candidate
    return path


def read_toml(path: Path, kind: str, shipped: str) -> dict:
    """The TOML file at path (a recipe, a ladder file: kind), or one line saying what is wrong with it;
    shipped says where the shipped ones are."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ScratchGPTError(f"{kind} {path} does not exist; {shipped}") from None
    except IsADirectoryError:
        raise ScratchGPTError(f"{kind} {path} is a directory; give a .toml file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ScratchGPTError(f"{kind} {path} is not valid TOML ({e}); fix the line it names") from None


def load_recipe(name: str | Path) -> dict:
    """A recipe file's settings (TOML: `key = value`, keys as the flags without `--`)."""
    path = recipe_path(name)
    values = read_toml(path, "recipe", "see recipes/ for the shipped ones")
    return checked(values, where=f"recipe {path}")
