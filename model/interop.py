"""Models from elsewhere, in and out: Hugging Face GPT-2 folders and nanoGPT's `ckpt.pt`.

In: `import_model(SRC)` builds a ScratchGPT `Checkpoint` in GPT-2's layout (`GPT2_LAYOUT`) from
    a Hugging Face GPT-2 folder (config.json + model.safetensors, or that model.safetensors), with
        GPT-2's full BPE vocabulary; its Conv1D weights are (in, out) and become our Linear's (out, in);
    a nanoGPT ckpt.pt (or the out_dir holding it), read by torch.load(weights_only=True): tensors,
        dicts and plain values only, never code. Its char vocabulary comes from a meta.pkl read by
        `read_meta_pkl`, which admits dicts, lists, strings and ints and nothing else; without one,
        GPT-2's BPE, as nanoGPT's sample.py does. A vocabulary padded past the tokenizer's (nanoGPT
        pads GPT-2's 50,257 to 50,304) is trimmed: the padding rows are ids no text encodes to.
`open_model(SRC)` is what the entry points call: a ScratchGPT checkpoint as it is, anything else
imported in memory, with the one line that says so.

Out: `export_hf(ckpt, OUT_DIR)` writes a folder transformers' `GPT2LMHeadModel.from_pretrained`
loads (config.json, model.safetensors, and GPT-2's vocab.json and merges.txt), for models in
GPT-2's layout with its full vocabulary; any other is refused, saying why.

Formats read for their layout only; the code here is ours.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import re
from pathlib import Path

import torch

from ..core.errors import ScratchGPTError
from ..core.files import atomic_write_bytes
from ..tokenizers import CharTokenizer, TiktokenTokenizer, Tokenizer
from ..tokenizers.bpe import GPT2_VOCAB_SIZE, _gpt2_files
from .checkpoint import Checkpoint, load_checkpoint, load_weights, read_header_metadata, save_tensors
from .gpt import GPT2_LAYOUT, GPTConfig, build_model

HF_WEIGHTS = "model.safetensors"
HF_INDEX = "model.safetensors.index.json"  # a sharded model's map of tensor -> shard file
HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}
# config.json fields that change GPT-2's forward and what a plain GPT-2 has there; any other value
# is a model ours would compute differently, so it is refused rather than imported wrongly
HF_PLAIN = {"scale_attn_weights": True, "scale_attn_by_inverse_layer_idx": False, "add_cross_attention": False}
LAYER_NORM_EPS = 1e-5  # nn.LayerNorm's, nanoGPT's and GPT-2's
NANOGPT_ARGS = {"n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout"}
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")  # (in, out) in HF
META_MAX_BYTES = 64 << 20  # a char vocabulary is kilobytes; anything near this is not one


# --- where a source is ------------------------------------------------------------------------


def _scratchgpt_tagged(path: Path) -> bool:
    """Whether a .safetensors file says it is ours (an unreadable one counts: load_checkpoint explains)."""
    metadata = read_header_metadata(path)
    return metadata is None or metadata.get("format") == "scratchgpt"


def source_kind(path: Path) -> str:
    """ "scratchgpt", "hf" or "nanogpt": what path holds, judged by its layout and never by unpickling."""
    if path.is_dir():
        if (path / "config.json").is_file() and ((path / HF_WEIGHTS).is_file() or (path / HF_INDEX).is_file()):
            return "hf"
        if (path / "ckpt.pt").is_file():
            return "nanogpt"
        if (path / "pytorch_model.bin").is_file():
            raise ScratchGPTError(
                f"{path} holds pytorch_model.bin, a pickle, which is not read; re-save it with "
                "transformers' save_pretrained(..., safe_serialization=True)"
            )
        raise ScratchGPTError(
            f"{path} is a folder with neither config.json + {HF_WEIGHTS} (Hugging Face GPT-2) "
            "nor ckpt.pt (nanoGPT); give a checkpoint file or such a folder"
        )
    if path.suffix in (".pt", ".pth", ".ckpt") and path.is_file():
        return "nanogpt"
    if path.suffix == ".safetensors" and path.is_file() and not _scratchgpt_tagged(path):
        if not (path.parent / "config.json").is_file():
            raise ScratchGPTError(
                f"{path} is neither a ScratchGPT checkpoint nor a Hugging Face model with "
                "config.json beside it; give the model's folder"
            )
        return "hf"
    return "scratchgpt"


def open_model(source: str | Path, *, device: str | torch.device = "cpu") -> tuple[Checkpoint, str | None]:
    """The model at source, and a line to show when it was imported in memory (else None).

    A ScratchGPT checkpoint loads as it is; a Hugging Face GPT-2 or nanoGPT model is imported.
    """
    path = Path(source).expanduser()
    if source_kind(path) == "scratchgpt":
        return load_checkpoint(path, device=device), None
    ckpt = import_model(path)
    ckpt.model.to(device)
    info = ckpt.provenance["imported"]
    note = (
        f"imported {path} ({info['format']}, {ckpt.model.num_params() / 1e6:,.1f}M parameters, "
        f"{info['vocabulary']}) in memory; `scratchgpt import` saves it as a checkpoint"
    )
    return ckpt, note


def import_model(source: str | Path, *, meta: str | Path | None = None) -> Checkpoint:
    """A Hugging Face GPT-2 or nanoGPT model as a ScratchGPT checkpoint in memory (fp32, on the CPU).

    meta names a nanoGPT meta.pkl (its char vocabulary) instead of looking for one.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise ScratchGPTError(f"{path} does not exist; give a Hugging Face GPT-2 folder or a nanoGPT ckpt.pt")
    kind = source_kind(path)
    if kind == "hf":
        if meta is not None:
            raise ScratchGPTError("--meta names a nanoGPT vocabulary; a Hugging Face GPT-2 uses GPT-2's, drop it")
        return _import_hf(path if path.is_dir() else path.parent, path if path.is_file() else None)
    if kind == "nanogpt":
        return _import_nanogpt(path / "ckpt.pt" if path.is_dir() else path, meta)
    raise ScratchGPTError(f"{path} is already a ScratchGPT checkpoint; use it as it is")


# --- shared: weights into our layout -----------------------------------------------------------


def _our_name(key: str) -> str | None:
    """Our state-dict name for a GPT-2-style one ("transformer.h.3.mlp.c_fc.weight"), or None for the
    causal-mask buffers some versions store (derived, not weights)."""
    for prefix in ("_orig_mod.", "module.", "transformer."):  # torch.compile's, DDP's, GPT2LMHeadModel's
        key = key.removeprefix(prefix)
    if key.endswith((".attn.bias", ".attn.masked_bias")):
        return None
    return re.sub(r"^h\.(\d+)\.", r"blocks.\1.", key)


def _tied(state: dict[str, torch.Tensor]) -> bool:
    """Whether the LM head is the token embedding (absent, as HF saves a tied one, or equal)."""
    head = state.get("lm_head.weight")
    return head is None or (head.shape == state["wte.weight"].shape and torch.equal(head, state["wte.weight"]))


def _fit_vocab(state: dict[str, torch.Tensor], vocab_size: int, source: Path, vocabulary: str) -> str:
    """Trim embedding and head rows past the tokenizer's ids; returns a note on it ("" if none)."""
    rows = state["wte.weight"].shape[0]
    if rows < vocab_size:
        raise ScratchGPTError(
            f"{source} has {rows:,} token embeddings but {vocabulary} has {vocab_size:,} "
            "tokens; give the vocabulary it was trained with"
        )
    if rows == vocab_size:
        return ""
    for name in ("wte.weight", "lm_head.weight"):
        if name in state:
            state[name] = state[name][:vocab_size]
    return f", {rows:,} embedding rows trimmed to its {vocab_size:,}"


def _build(config: GPTConfig, state: dict[str, torch.Tensor], source: Path, what: str) -> torch.nn.Module:
    """Our model of config holding state's weights; a weight that does not fit is one line naming it."""
    model = build_model(config)
    detail = load_weights(model, state, cast=lambda v: v.float())
    if detail:
        raise ScratchGPTError(f"{source}: weights do not match {what} ({detail}); the file and its config disagree")
    return model.eval()


def _imported(source: Path, fmt: str, vocabulary: str, **train) -> dict:
    return {"imported": {"from": str(source), "format": fmt, "vocabulary": vocabulary}, **train}


# --- Hugging Face GPT-2 -------------------------------------------------------------------------


def _hf_tensors(folder: Path, weights: Path | None) -> dict[str, torch.Tensor]:
    """Every tensor of the model: one model.safetensors, or the shards its index names."""
    from .checkpoint import load_tensors

    if weights is None and not (folder / HF_WEIGHTS).is_file():
        try:
            shards = set(json.loads((folder / HF_INDEX).read_text(encoding="utf-8"))["weight_map"].values())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ScratchGPTError(f"cannot read {folder / HF_INDEX} ({e}); re-download the model") from None
        tensors = {}
        for shard in sorted(shards):
            tensors.update(load_tensors(folder / Path(str(shard)).name)[0])
        return tensors
    return load_tensors(weights or folder / HF_WEIGHTS)[0]


def hf_config(hf: dict, source: Path) -> GPTConfig:
    """Our GPTConfig for a GPT-2 config.json; a field that would change the forward is refused."""
    where = f"{source}/config.json"
    if hf.get("model_type") != "gpt2":
        raise ScratchGPTError(
            f"{where} describes model_type {hf.get('model_type')!r}, not a GPT-2; "
            "only GPT-2 (and nanoGPT) models import"
        )
    refused = [k for k, plain in HF_PLAIN.items() if k in hf and hf[k] != plain]
    activation = hf.get("activation_function", "gelu_new")
    if activation not in HF_ACTIVATIONS:
        refused.append("activation_function")
    if hf.get("n_inner") not in (None, 4 * hf.get("n_embd", 0)):
        refused.append("n_inner")
    if not math.isclose(hf.get("layer_norm_epsilon", LAYER_NORM_EPS), LAYER_NORM_EPS, rel_tol=1e-6):
        refused.append("layer_norm_epsilon")
    if refused:
        shown = ", ".join(f"{k}={json.dumps(hf.get(k))}" for k in refused)
        raise ScratchGPTError(
            f"{where} sets {shown}, which ScratchGPT's GPT cannot honour; only plain GPT-2 configs import"
        )
    dropout = hf.get("resid_pdrop", 0.0)  # embd_pdrop too: ours drops residual and embedding alike
    attn_dropout = hf.get("attn_pdrop", dropout)
    try:
        return GPTConfig(
            vocab_size=GPT2_VOCAB_SIZE,
            block_size=hf["n_positions"],
            n_layer=hf["n_layer"],
            n_head=hf["n_head"],
            n_embd=hf["n_embd"],
            dropout=dropout,
            attn_dropout=None if attn_dropout == dropout else attn_dropout,
            **{
                **GPT2_LAYOUT,
                "activation": HF_ACTIVATIONS[activation],
                "tie_embeddings": hf.get("tie_word_embeddings", True),
            },
        )
    except KeyError as e:
        raise ScratchGPTError(f"{where} lacks {e.args[0]!r}; it is not a complete GPT-2 config") from None
    except TypeError as e:
        raise ScratchGPTError(f"{where} has a malformed field ({e}); it is not a GPT-2 config") from None


def _import_hf(folder: Path, weights: Path | None) -> Checkpoint:
    try:
        hf = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ScratchGPTError(f"cannot read {folder}/config.json ({e}); re-download the model") from None
    if not isinstance(hf, dict):
        raise ScratchGPTError(f"{folder}/config.json is not a JSON object; re-download the model")
    config = hf_config(hf, folder)
    state = {}
    for key, tensor in _hf_tensors(folder, weights).items():
        name = _our_name(key)
        if name is not None:
            state[name] = tensor.t() if name.endswith(CONV1D) and tensor.dim() == 2 else tensor
    if "wte.weight" not in state:
        raise ScratchGPTError(f"{folder} has no token embedding (transformer.wte.weight); it is not a GPT-2")
    vocabulary = "GPT-2 BPE" + _fit_vocab(state, GPT2_VOCAB_SIZE, folder, "GPT-2's vocabulary")
    model = _build(config, state, folder, "its config.json")
    return Checkpoint(
        model=model,
        tokenizer=TiktokenTokenizer(),
        path=folder,
        provenance=_imported(folder, "Hugging Face GPT-2", vocabulary),
    )


# --- nanoGPT ------------------------------------------------------------------------------------


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles only what needs no code: every class or function lookup is refused."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"it needs code to unpickle ({module}.{name})")


def _plain(value: object) -> bool:
    """Whether value is made of dicts, lists, strings and ints only (bools, floats, tuples are not)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack += [*v.keys(), *v.values()]
        elif isinstance(v, list):
            stack += v
        elif not (isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))):
            return False
    return True


def read_meta_pkl(path: str | Path) -> dict:
    """nanoGPT's meta.pkl, read without running any code it might carry."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ScratchGPTError(f"cannot read {path}: {e.strerror or e}; check the path") from None
    if len(data) > META_MAX_BYTES:
        raise ScratchGPTError(
            f"{path} is {len(data) / 1e6:,.0f} MB, far more than a vocabulary; give nanoGPT's meta.pkl"
        )
    try:
        meta = _PlainUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ScratchGPTError(
            f"{path} is refused: {reason}; only plain dicts, lists, strings and ints are read from a meta.pkl"
        ) from None
    if not isinstance(meta, dict) or not _plain(meta):
        raise ScratchGPTError(f"{path} holds more than dicts, lists, strings and ints; it is not nanoGPT's meta.pkl")
    return meta


def char_tokenizer_from_meta(meta: dict, path: Path) -> CharTokenizer:
    """The CharTokenizer whose id i is meta["itos"][i]."""
    itos = meta.get("itos")
    if not isinstance(itos, dict) or set(itos) != set(range(len(itos))):
        raise ScratchGPTError(f"{path} has no 'itos' mapping ids 0..n-1 to characters; it is not a char vocabulary")
    chars = [itos[i] for i in range(len(itos))]
    if not all(len(c) == 1 for c in chars):
        raise ScratchGPTError(f"{path} maps ids to strings longer than one character; only char vocabularies import")
    try:
        return CharTokenizer("".join(chars))
    except ValueError as e:
        raise ScratchGPTError(f"{path} is not a usable char vocabulary: {e}") from None


def _meta_candidates(ckpt_path: Path, saved: dict) -> list[Path]:
    """Where nanoGPT keeps the meta.pkl of a checkpoint: beside it, or data/<dataset>/ (as sample.py
    looks, from the working directory; and from the nanoGPT folder holding the run's out_dir)."""
    found = [ckpt_path.parent / "meta.pkl"]
    dataset = (saved.get("config") or {}).get("dataset") if isinstance(saved.get("config"), dict) else None
    if isinstance(dataset, str) and re.fullmatch(r"[\w.-]+", dataset) and dataset not in (".", ".."):
        found += [Path("data") / dataset / "meta.pkl", ckpt_path.parent.parent / "data" / dataset / "meta.pkl"]
    return found


def _torch_load(path: Path) -> object:
    """torch.load with weights_only: tensors and plain containers; a pickle needing code is one line."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError as e:
        unsupported = re.search(r"(?:unsupported|Unsupported global:) GLOBAL ([\w.]+)", str(e))
        what = f" ({unsupported.group(1)})" if unsupported else ""
        raise ScratchGPTError(
            f"{path} needs code to unpickle{what}; only tensors and plain values are read "
            "(torch.load weights_only); re-save its state dict plainly"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ScratchGPTError(f"{path} is not a readable PyTorch checkpoint ({reason}); re-save it") from None


def nanogpt_config(model_args: object, vocab_size: int, tied: bool, source: Path) -> GPTConfig:
    """Our GPTConfig for nanoGPT's model_args (its GPTConfig as a dict): GPT-2's layout with exact GELU."""
    if not isinstance(model_args, dict):
        raise ScratchGPTError(f"{source} has no model_args dict; it is not a nanoGPT checkpoint")
    unknown = sorted(set(model_args) - NANOGPT_ARGS)
    if unknown:
        raise ScratchGPTError(
            f"{source}'s model_args has {unknown}, which ScratchGPT's GPT cannot honour; "
            "only nanoGPT's own model_args import"
        )
    missing = sorted(NANOGPT_ARGS - {"dropout"} - set(model_args))
    if missing:
        raise ScratchGPTError(f"{source}'s model_args lacks {missing}; it is not a complete nanoGPT checkpoint")
    bias = bool(model_args["bias"])
    try:
        return GPTConfig(
            vocab_size=vocab_size,
            block_size=model_args["block_size"],
            n_layer=model_args["n_layer"],
            n_head=model_args["n_head"],
            n_embd=model_args["n_embd"],
            dropout=model_args.get("dropout", 0.0),
            **{**GPT2_LAYOUT, "bias": bias, "norm_bias": bias, "activation": "gelu", "tie_embeddings": tied},
        )
    except TypeError as e:
        raise ScratchGPTError(
            f"{source}'s model_args has a malformed value ({e}); it is not a nanoGPT checkpoint"
        ) from None


def _import_nanogpt(path: Path, meta: str | Path | None) -> Checkpoint:
    saved = _torch_load(path)
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict) or "model_args" not in saved:
        raise ScratchGPTError(f"{path} has no 'model' and 'model_args'; it is not a nanoGPT checkpoint")
    state = {}
    for key, tensor in saved["model"].items():
        name = _our_name(key) if isinstance(key, str) else None
        if name is not None and isinstance(tensor, torch.Tensor):
            state[name] = tensor
    if "wte.weight" not in state:
        raise ScratchGPTError(f"{path} has no token embedding (transformer.wte.weight); it is not a nanoGPT model")
    tied = _tied(state)
    if tied:
        state.pop("lm_head.weight", None)
    meta_path = Path(meta).expanduser() if meta is not None else None
    if meta_path is None:
        meta_path = next((p for p in _meta_candidates(path, saved) if p.is_file()), None)
    tokenizer: Tokenizer
    if meta_path is None:
        tokenizer, vocabulary = TiktokenTokenizer(), "GPT-2 BPE, no meta.pkl found"
    else:
        tokenizer = char_tokenizer_from_meta(read_meta_pkl(meta_path), meta_path)
        vocabulary = f"{tokenizer.vocab_size} characters from {meta_path}"
    vocabulary += _fit_vocab(state, tokenizer.vocab_size, path, meta_path or "GPT-2's vocabulary")
    config = nanogpt_config(saved["model_args"], tokenizer.vocab_size, tied, path)
    model = _build(config, state, path, "its model_args")
    step = saved.get("iter_num")
    train = {"step": step} if isinstance(step, int) and not isinstance(step, bool) else {}
    train = _imported(path, "nanoGPT", vocabulary, **train)
    return Checkpoint(model=model, tokenizer=tokenizer, path=path, provenance=train)


# --- out: a Hugging Face GPT-2 folder ---------------------------------------------------------


def hf_export_problem(config: GPTConfig, tokenizer: Tokenizer) -> str | None:
    """Why a model cannot be a Hugging Face GPT-2, in words, or None when it can."""
    if config.arch != "gpt":
        return f"it is the {config.arch} baseline, not a transformer"
    differences = [
        (not config.learned_positions, "rotary positions or none (GPT-2 learns one embedding per position)"),
        (not (config.mlp and config.residual and config.norms), "a part taken away (feed-forward, residual or norms)"),
        (config.qk_norm, "normalised queries and keys"),
        (not (config.bias and config.norm_bias), "layers without biases"),
        (config.activation not in ("gelu", "gelu_tanh"), f"a {config.activation} MLP"),
    ]
    found = [what for differs, what in differences if differs]
    if found:
        return f"it has {', '.join(found)}"
    if not isinstance(tokenizer, TiktokenTokenizer) or tokenizer.compact:
        size = f"{tokenizer.vocab_size:,}"
        return f"its vocabulary is {tokenizer.name} of {size} tokens, not GPT-2's full {GPT2_VOCAB_SIZE:,}"
    return None


def hf_config_json(config: GPTConfig) -> dict:
    """config.json of a GPT2LMHeadModel with config's shape."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": None,
        "activation_function": "gelu_new" if config.activation == "gelu_tanh" else "gelu",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.attention_dropout,
        "layer_norm_epsilon": LAYER_NORM_EPS,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "tie_word_embeddings": config.tie_embeddings,
        "bos_token_id": GPT2_VOCAB_SIZE - 1,
        "eos_token_id": GPT2_VOCAB_SIZE - 1,
        "use_cache": True,
    }


def export_hf(ckpt: Checkpoint, out_dir: str | Path, *, dtype: torch.dtype = torch.float32) -> Path:
    """Write ckpt as a Hugging Face GPT-2 folder (a new or empty out_dir); each file atomically."""
    out = Path(out_dir).expanduser()
    problem = hf_export_problem(ckpt.config, ckpt.tokenizer)
    if problem:
        raise ScratchGPTError(
            f"{ckpt.path or 'this model'} cannot be a Hugging Face GPT-2: {problem}; "
            "only GPT-2-layout models export (train --arch gpt2 --tokenizer tiktoken, "
            "or an imported one)"
        )
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ScratchGPTError(f"{out} already exists and is not an empty folder; choose a new OUT_DIR")
    tensors = {}
    for name, tensor in ckpt.model.state_dict().items():
        if name == "lm_head.weight":
            if ckpt.config.tie_embeddings:
                continue  # the embedding, as transformers saves a tied head
            hf_name = name
        else:
            hf_name = "transformer." + re.sub(r"^blocks\.(\d+)\.", r"h.\1.", name)
        tensor = tensor.t() if name.endswith(CONV1D) else tensor
        tensors[hf_name] = tensor.to(dtype).contiguous()
    out.mkdir(parents=True, exist_ok=True)
    save_tensors(out / HF_WEIGHTS, tensors, {"format": "pt"})
    config = {**hf_config_json(ckpt.config), "torch_dtype": str(dtype).removeprefix("torch.")}
    atomic_write_bytes(out / "config.json", (json.dumps(config, indent=2) + "\n").encode())
    files = _gpt2_files()  # GPT-2's published encoder.json and vocab.bpe are HF's vocab.json and merges.txt
    atomic_write_bytes(out / "vocab.json", files["encoder.json"].read_bytes())
    atomic_write_bytes(out / "merges.txt", files["vocab.bpe"].read_bytes())
    return out
