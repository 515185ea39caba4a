"""Checkpoints: one `.safetensors` file with the weights, and in its metadata everything needed to
use them (model config, tokenizer spec, corpus, training state). Nothing is pickled, nothing is
guessed at load time, and every write is atomic (temp file, fsync, rename).

Metadata values are strings (a safetensors rule); ours are JSON:
    format          "scratchgpt"          format_version  "1"
    config          GPTConfig as JSON     tokenizer       tokenizer spec as JSON
    corpus          {"name", "sha256"} or null
    train           {"step", "val_loss", "tokens_seen", ...}
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from ..core.errors import ScratchGPTError
from ..core.files import atomic_write_bytes
from ..tokenizers import Tokenizer, tokenizer_from_spec
from .gpt import GPTConfig, build_model

FORMAT = "scratchgpt"
FORMAT_VERSION = 1
REQUIRED_KEYS = ("format", "format_version", "config", "tokenizer")
PROVENANCE_KEY = "train"  # the file's metadata key, kept for checkpoints already written


@dataclass
class Checkpoint:
    model: torch.nn.Module
    tokenizer: Tokenizer
    path: Path | None = None
    corpus: dict | None = None  # {"name": ..., "sha256": ...} of the corpus it was trained on
    # how it was made (the file's PROVENANCE_KEY metadata): step, val_loss, tokens_seen, fine_tunes, imported, ...
    provenance: dict = field(default_factory=dict)

    @property
    def config(self) -> GPTConfig:
        return self.model.config


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    try:
        atomic_write_bytes(path, safetensors_bytes(tensors, metadata=metadata))
    except OSError as e:
        raise ScratchGPTError(f"could not write {path}: {e.strerror or e}; check the disk and permissions") from e


def load_tensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file, turning every way it can be broken into one ScratchGPTError."""
    path = Path(path)
    if not path.exists():
        raise ScratchGPTError(f"checkpoint {path} does not exist; check the path")
    if path.is_dir():
        raise ScratchGPTError(f"checkpoint {path} is a directory; give a .safetensors file")
    try:
        # safe_open opens its file twice (the header, then the tensors); a save renamed over path in
        # between would pair one version's metadata with another's weights. Opened once and handed
        # over as /proc/self/fd/N (Linux), both opens get the same file, whatever happens to path.
        with open(path, "rb") as held:
            name = f"/proc/self/fd/{held.fileno()}" if sys.platform == "linux" else str(path)
            with safe_open(name, framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if _is_text(path):
            raise ScratchGPTError(
                f"{path} is a text file, not a checkpoint; give a .safetensors file (text to train on goes to --corpus)"
            ) from None
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ScratchGPTError(
            f"{path} is not a readable safetensors checkpoint ({reason}); re-download or re-save it"
        ) from e
    return tensors, metadata


def _is_text(path: Path) -> bool:
    """Whether path starts as UTF-8 text would (a safetensors file starts with its header's length in
    8 binary bytes, then JSON)."""
    with open(path, "rb") as f:
        head = f.read(64)
    text = head.decode("utf-8", errors="ignore")  # a character cut at the 64th byte is dropped
    return bool(head) and len(text.encode()) >= len(head) - 3 and all(c.isprintable() or c in "\n\r\t" for c in text)


def _json_field(metadata: dict[str, str], key: str, path: Path):
    try:
        return json.loads(metadata[key])
    except KeyError:
        raise ScratchGPTError(f"{path} has no '{key}' in its metadata; it was not saved by ScratchGPT") from None
    except json.JSONDecodeError as e:
        raise ScratchGPTError(f"{path} has a corrupt '{key}' entry in its metadata ({e.msg})") from None


def checkpoint_metadata(path: str | Path) -> dict:
    """The decoded metadata of a checkpoint (config, tokenizer, corpus, PROVENANCE_KEY), without building it."""
    _, metadata = load_tensors(path)
    return _decode_metadata(metadata, Path(path))


def _decode_metadata(metadata: dict[str, str], path: Path) -> dict:
    if metadata.get("format") != FORMAT:
        raise ScratchGPTError(f"{path} is a safetensors file but not a ScratchGPT checkpoint (no format tag)")
    version = metadata.get("format_version", "")
    if not version.isdigit():
        raise ScratchGPTError(f"{path} has no valid format_version in its metadata")
    if int(version) > FORMAT_VERSION:
        raise ScratchGPTError(
            f"{path} uses checkpoint format {version}, newer than this ScratchGPT reads ({FORMAT_VERSION}); upgrade"
        )
    return {
        "config": _json_field(metadata, "config", path),
        "tokenizer": _json_field(metadata, "tokenizer", path),
        "corpus": json.loads(metadata.get("corpus", "null")),
        PROVENANCE_KEY: drop_estimates_of_averages(json.loads(metadata.get(PROVENANCE_KEY, "{}"))),
    }


def check_replaceable(path: str | Path, *, force: bool, how: str, other: str = "choose another path") -> None:
    """Refuse to write a checkpoint over path unless nothing is there, or a ScratchGPT checkpoint
    is and force is given: how says how to force it, other what to do about a file that is not one.

    Only the file's header is read: refusing costs nothing, whatever the file's size.
    """
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_dir():
        raise ScratchGPTError(f"{path} is a directory; give a .safetensors file path")
    metadata = header_metadata(path)
    if metadata.get("format") not in (FORMAT, FORMAT + ".train_state"):
        raise ScratchGPTError(f"{path} exists and is not a ScratchGPT checkpoint, so it is left as it is; {other}")
    if not force:
        step = json.loads(metadata.get(PROVENANCE_KEY) or "{}").get("step")
        at = f" (step {step + 1})" if isinstance(step, int) else ""
        raise ScratchGPTError(f"{path} already holds a checkpoint{at}; {how}")


def read_header_metadata(path: str | Path) -> dict[str, str] | None:
    """The metadata in a safetensors file's header, read without its tensors: {} when it has none,
    None when path is no readable safetensors file (a text file, a truncated download)."""
    try:
        with open(path, "rb") as f:
            size = int.from_bytes(f.read(8), "little")
            if not 2 <= size <= 100_000_000:
                return None
            header = json.loads(f.read(size))
    except (OSError, ValueError):
        return None
    if not isinstance(header, dict):
        return None
    metadata = header.get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}


def header_metadata(path: str | Path) -> dict[str, str]:
    """`read_header_metadata`, {} for a file that is not safetensors."""
    return read_header_metadata(path) or {}


def drop_estimates_of_averages(provenance: dict) -> dict:
    """A provenance record without the loss estimates when it describes an average of several checkpoints.

    Those estimates were the first run's, not the average's (`scratchgpt eval` scores the average);
    exports made before `export` dropped them still carry them, so loading drops them too.
    """
    if not isinstance(provenance, dict) or not isinstance(provenance.get("exported_from"), list):
        return provenance
    return {k: v for k, v in provenance.items() if k not in ("train", "val", "val_loss")}


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    tokenizer: Tokenizer,
    *,
    corpus: dict | None = None,
    provenance: dict | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write model + tokenizer + provenance to path atomically; dtype casts the floating weights."""
    state = model.state_dict()
    if model.config.arch == "gpt" and model.config.tie_embeddings:
        state.pop("lm_head.weight")  # the same tensor as wte.weight; safetensors stores it once
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    metadata = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "config": json.dumps(model.config.to_dict()),
        "tokenizer": json.dumps(tokenizer.spec()),
        "corpus": json.dumps(corpus),
        PROVENANCE_KEY: json.dumps(provenance or {}),
    }
    save_tensors(path, state, metadata)
    return Path(path)


def weights_mismatch(model: torch.nn.Module, tensors: dict[str, torch.Tensor]) -> str | None:
    """How tensors fail to fill model's state dict (a missing, unexpected or misshapen weight), or None."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [k for k in expected if k in tensors and tensors[k].shape != expected[k].shape]
    if missing:
        return f"missing {missing[:3]}"
    if unexpected:
        return f"unexpected {unexpected[:3]}"
    if wrong:
        return f"{wrong[0]} is {tuple(tensors[wrong[0]].shape)}, config says {tuple(expected[wrong[0]].shape)}"
    return None


def load_weights(
    model: torch.nn.Module, tensors: dict[str, torch.Tensor], *, cast: Callable[[torch.Tensor], torch.Tensor]
) -> str | None:
    """Fill model with tensors, each cast; how they fail to fit it (see weights_mismatch), and then
    nothing loaded. A tied LM head, stored once as the token embedding, is tied again."""
    config = model.config
    tied = config.arch == "gpt" and config.tie_embeddings
    if tied and "wte.weight" in tensors:
        tensors = {**tensors, "lm_head.weight": tensors["wte.weight"]}
    detail = weights_mismatch(model, tensors)
    if detail:
        return detail
    model.load_state_dict({k: cast(v) for k, v in tensors.items()})
    if tied:
        model.lm_head.weight = model.wte.weight
    return None


def load_checkpoint(
    path: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Checkpoint:
    """Rebuild model and tokenizer from a checkpoint; weights are cast to dtype on device."""
    path = Path(path)
    tensors, metadata = load_tensors(path)
    meta = _decode_metadata(metadata, path)
    if not isinstance(meta["config"], dict):
        raise ScratchGPTError(f"{path} has a malformed model config in its metadata")
    try:
        config = GPTConfig.from_dict(meta["config"])
    except TypeError as e:
        raise ScratchGPTError(f"{path} has an incomplete model config ({e}); re-save it") from None
    tokenizer = tokenizer_from_spec(meta["tokenizer"])
    if tokenizer.vocab_size != config.vocab_size:
        raise ScratchGPTError(
            f"{path}: tokenizer has {tokenizer.vocab_size} tokens but the model expects {config.vocab_size}"
        )
    stored = sum(t.numel() for t in tensors.values())
    if config.approx_params > 2 * stored + 10**6:  # never allocate a model the file cannot fill
        raise ScratchGPTError(f"{path}: its config describes a far larger model than its weights; the file is damaged")
    with torch.device(device):  # not "meta": initialising meta tensors imports torch._dynamo, ~1 s of start-up
        model = build_model(config)
    detail = load_weights(model, tensors, cast=lambda v: v.to(dtype) if v.is_floating_point() else v)
    if detail:
        raise ScratchGPTError(f"{path}: weights do not match its model config ({detail}); the file is damaged")
    return Checkpoint(
        model=model, tokenizer=tokenizer, path=path, corpus=meta["corpus"], provenance=meta[PROVENANCE_KEY]
    )


def average_checkpoints(paths: list[str | Path]) -> Checkpoint:
    """One model whose every weight is the mean of the same weight in each checkpoint.

    Averaging the ends of runs that share an ancestor (a run and its fine-tunes) often lands lower
    than any of them (weight averaging: SWA, model soups); unrelated runs do not average. They must
    share architecture and tokenizer; dropout may differ, and so may the context length where no
    weight depends on it (RoPE, or the bigram): a run and its fine-tune at a longer context average
    well. The first one gives config (its block_size too) and provenance.
    """
    ckpts = [load_checkpoint(p) for p in paths]
    first = ckpts[0]

    def architecture(c: Checkpoint) -> tuple:
        free = {"dropout": None, "attn_dropout": None}  # dropout is training, not architecture
        if c.config.arch == "bigram" or not c.config.learned_positions:  # no position table: block_size is a setting
            free["block_size"] = None
        return {**c.config.to_dict(), **free}, c.tokenizer.spec()

    for other in ckpts[1:]:
        if architecture(other) != architecture(first):
            raise ScratchGPTError(
                f"{other.path} is another architecture or vocabulary than {first.path}; "
                "only checkpoints of one model can be averaged"
            )
    states = [c.model.state_dict() for c in ckpts]
    first.model.load_state_dict({k: sum(s[k] for s in states) / len(states) for k in states[0]})
    return first


def save_train_state(
    path: str | Path, optimizer: torch.optim.Optimizer, *, rng: dict[str, torch.Tensor], state: dict
) -> None:
    """Optimizer moments, RNG states and loop counters for an exact resume, as safetensors.

    The optimizer's tensors become `optim.<param index>.<name>`, RNG states `rng.<name>`; its
    scalars and param groups, and `state` (step, best val, ...), go into the metadata as JSON.
    """
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for idx, param_state in sd["state"].items():
        for name, value in param_state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value
            else:
                scalars[f"{idx}.{name}"] = value
    tensors.update({f"rng.{name}": t for name, t in rng.items()})
    metadata = {
        "format": FORMAT + ".train_state",
        "format_version": str(FORMAT_VERSION),
        "param_groups": json.dumps(sd["param_groups"]),
        "scalars": json.dumps(scalars),
        "state": json.dumps(state),
    }
    save_tensors(path, tensors, metadata)


def load_train_state(path: str | Path, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Restore optimizer in place from a train-state file; returns (rng states, loop state)."""
    path = Path(path)
    tensors, metadata = load_tensors(path)
    if metadata.get("format") != FORMAT + ".train_state":
        raise ScratchGPTError(f"{path} is not a ScratchGPT train-state file; cannot resume from it")
    groups = _json_field(metadata, "param_groups", path)
    scalars = _json_field(metadata, "scalars", path)
    state: dict[int, dict] = {}
    rng = {}
    for key, value in tensors.items():
        kind, _, rest = key.partition(".")
        if kind == "rng":
            rng[rest] = value
        else:
            idx, _, name = rest.partition(".")
            state.setdefault(int(idx), {})[name] = value
    for key, value in scalars.items():
        idx, _, name = key.partition(".")
        state.setdefault(int(idx), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise ScratchGPTError(f"{path} does not fit this model's optimizer ({e}); start without --resume") from None
    return rng, _json_field(metadata, "state", path)


SHIPPED = {
    "char": "shakespeare-char.safetensors",
    "tiktoken": "shakespeare-tiktoken.safetensors",
    "word": "shakespeare-word.safetensors",
    "bpe": "shakespeare-bpe.safetensors",
}


def shipped_checkpoint(tokenizer: str = "char") -> Path | None:
    """The default model shipped for a vocabulary, or None where none ships."""
    from ..core.paths import SHIPPED_CHECKPOINTS

    path = SHIPPED_CHECKPOINTS / SHIPPED.get(tokenizer, "")
    return path if tokenizer in SHIPPED and path.is_file() else None


def resolve_checkpoint(path: str | Path | None) -> Path:
    """A checkpoint the user named, or the shipped char model when they named none."""
    if path:
        return Path(path).expanduser()
    shipped = shipped_checkpoint("char")
    if shipped is None:
        raise ScratchGPTError("no checkpoint given and no shipped model found; pass --checkpoint PATH")
    return shipped


def check_tokenizer(ckpt: Checkpoint, tokenizer: str | None) -> None:
    """--tokenizer beside a checkpoint the user named: it may only agree. The named checkpoint is
    what gets loaded; it is never swapped for another model behind the user's back."""
    if tokenizer and ckpt.tokenizer.name != tokenizer:
        raise ScratchGPTError(
            f"{ckpt.path} has a {ckpt.tokenizer.name} vocabulary, not {tokenizer}; drop --tokenizer to use it, "
            f"or name a {tokenizer} checkpoint"
        )
