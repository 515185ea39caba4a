"""What a run starts from: the corpus, the model (resumed, fine-tuned or new) with its vocabulary
fitted or grown to the corpus, and the teachers of a distilled run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from ..core.errors import ScratchGPTError, is_out_of_memory
from ..core.text import quoted_arg
from ..data import Corpus, check_corpus, iter_text, resolve_corpus
from ..data.learned import learned_tokenizer
from ..model.checkpoint import Checkpoint, load_checkpoint
from ..model.gpt import GPT2_LAYOUT, GPTConfig, build_model, resize_vocab
from ..tokenizers import Tokenizer, fit_tokenizer
from ..tokenizers.learned import load_tokenizer_file
from .config import FINE_TUNE_BATCH_TOKENS, FRESH_BLOCK_SIZE, FRESH_DROPOUT, TrainConfig, heads_for
from .distill import Teacher
from .run_files import RunPaths


def batch_size_for(block_size: int) -> int:
    """A fine-tune's sequences per step: FINE_TUNE_BATCH_TOKENS tokens, however long the context."""
    return max(1, FINE_TUNE_BATCH_TOKENS // block_size)


# --- corpus and vocabulary ------------------------------------------------------------------


def corpus_record(corpus: Corpus, source: str) -> dict:
    return {"name": corpus.name, "sha256": corpus.sha256, "source": source}


CORPUS_HINTS = {"cli_hint": "pass --corpus", "repl_hint": "name one with /train N PATH or /corpus PATH"}


def corpus_of(ckpt: Checkpoint, override: str | None) -> tuple[Corpus, str]:
    """The corpus to keep training a checkpoint on: the one given, else the one it recorded."""
    if override:
        return resolve_corpus(override), override
    if not ckpt.corpus:
        raise ScratchGPTError(f"{ckpt.path} does not record its corpus", **CORPUS_HINTS)
    source = ckpt.corpus.get("source") or ckpt.corpus["name"]
    corpus = resolve_corpus(source)
    if corpus.sha256 != ckpt.corpus["sha256"]:
        raise ScratchGPTError(f"corpus {source} has changed since {ckpt.path} was trained on it", **CORPUS_HINTS)
    return corpus, source


def vocab_growth(corpus: str, old: int, new: int) -> str:
    """The line saying a corpus grew a char model's vocabulary (train --init-from and /train say it alike)."""
    return f"{corpus} brought {new - old} new characters: vocabulary {old} → {new}"


def adapt_to_corpus(ckpt: Checkpoint, corpus: Corpus, *, lossy: bool = False) -> Checkpoint:
    """Grow a char model's vocabulary with the characters a new corpus brings (old ids kept)."""
    if ckpt.tokenizer.name != "char":
        return ckpt
    grown = ckpt.tokenizer.extend(iter_text(corpus, lossy=lossy))
    if grown.vocab_size == ckpt.tokenizer.vocab_size:
        return ckpt
    model = resize_vocab(ckpt.model, grown.vocab_size)
    return replace(ckpt, model=model, tokenizer=grown)


def load_teacher(paths: tuple[str, ...], student: Checkpoint, device: torch.device) -> Teacher:
    """--teacher: the checkpoints whose averaged next-token distribution the student learns.

    They must share the student's vocabulary, and their context must cover its windows.
    """
    models = []
    for path in paths:
        ckpt = load_checkpoint(path, device=device)
        if ckpt.tokenizer.spec() != student.tokenizer.spec():
            raise ScratchGPTError(
                f"teacher {quoted_arg(path)} has another vocabulary than the model trained; "
                "a teacher must use the same tokenizer and vocabulary"
            )
        reads, trains = ckpt.config.block_size, student.config.block_size
        if reads < trains:
            raise ScratchGPTError(
                f"teacher {quoted_arg(path)} reads {reads} tokens at most, the model trains on "
                f"{trains}; pass --block-size {reads} or less"
            )
        models.append(ckpt.model)
    return Teacher(models)


def fresh_tokenizer(config: TrainConfig, corpus: Corpus, *, full_gpt2_vocab: bool = False) -> Tokenizer:
    """A new model's vocabulary: read from --tokenizer FILE, learned from the training split (bpe, cached), or
    fitted to the corpus (char, word, compact tiktoken)."""
    if config.tokenizer.endswith(".json"):
        if config.vocab_size is not None:
            raise ScratchGPTError(
                f"--vocab-size does not apply to a tokenizer file ({quoted_arg(config.tokenizer)} "
                "fixes its vocabulary); leave it out"
            )
        return load_tokenizer_file(Path(config.tokenizer).expanduser())
    if config.tokenizer == "bpe":
        return learned_tokenizer(corpus, vocab_size=config.vocab_size, lossy=config.lossy)
    chunks = None if full_gpt2_vocab else iter_text(corpus, lossy=config.lossy)
    return fit_tokenizer(config.tokenizer, chunks, vocab_size=config.vocab_size)


def model_config(config: TrainConfig, vocab_size: int) -> GPTConfig:
    """The shape of the new model config describes, for a vocabulary of vocab_size."""
    gpt2 = config.arch == "gpt2"
    switches = dict(positions=config.positions, mlp=config.mlp, residual=config.residual, norms=config.norms)
    layout = (
        GPT2_LAYOUT
        if gpt2
        else dict(
            bias=config.bias,
            rope=config.rope,
            qk_norm=config.qk_norm,
            activation=config.activation,
            tie_embeddings=config.tie_embeddings,
            **switches,
        )
    )
    return GPTConfig(
        vocab_size=vocab_size,
        block_size=config.block_size or FRESH_BLOCK_SIZE,
        n_layer=config.n_layer,
        n_head=heads_for(config.n_embd, config.n_head),
        n_embd=config.n_embd,
        dropout=FRESH_DROPOUT if config.dropout is None else config.dropout,
        attn_dropout=config.attn_dropout,
        arch="gpt" if gpt2 else config.arch,
        **layout,
    )


def fresh_model(config: TrainConfig, corpus: Corpus, device: torch.device) -> Checkpoint:
    full_gpt2_vocab = config.arch == "gpt2" and config.tokenizer == "tiktoken"  # GPT-2's own ids, as nanoGPT uses
    tokenizer = fresh_tokenizer(config, corpus, full_gpt2_vocab=full_gpt2_vocab)
    shape = model_config(config, tokenizer.vocab_size)
    try:
        return Checkpoint(model=build_model(shape).to(device), tokenizer=tokenizer)
    except (MemoryError, RuntimeError) as e:
        if not is_out_of_memory(e):
            raise
        raise ScratchGPTError(
            f"out of memory building the model ({shape.approx_params * 4 / 1e9:,.1f} GB of fp32 weights); "
            "reduce --n-embd or --n-layer"
        ) from e


def check_same_vocabulary(config: TrainConfig, ckpt: Checkpoint) -> None:
    """A fine-tune keeps its checkpoint's vocabulary: a --tokenizer FILE (or a name other than the default) that
    is not that vocabulary is refused, never silently ignored."""
    if config.tokenizer.endswith(".json"):
        same = load_tokenizer_file(Path(config.tokenizer).expanduser()).spec() == ckpt.tokenizer.spec()
    else:
        same = config.tokenizer in (TrainConfig.tokenizer, ckpt.tokenizer.name)
    if not same:
        raise ScratchGPTError(
            f"{ckpt.path} has its own {ckpt.tokenizer.name} vocabulary, which a fine-tune keeps, "
            f"not --tokenizer {quoted_arg(config.tokenizer)}; drop --tokenizer, or train a new model "
            "without --init-from"
        )


def check_inputs(config: TrainConfig, *, resume: bool) -> None:
    """Refuse a corpus the user named that is not there (missing, a directory, empty) before the
    output is looked at: a missing input is the first thing to hear of, not an --out that holds a run.
    A resumed run reads the corpus its checkpoint recorded; a fine-tune's default corpus is its own."""
    if resume or (config.init_from and config.corpus == TrainConfig.corpus):
        return
    check_corpus(config.corpus)


def start_from(
    config: TrainConfig, paths: RunPaths, device: torch.device, *, resume: bool, notify: Callable[[str], None]
) -> tuple[Checkpoint, Corpus, str]:
    """The checkpoint a run trains (resumed, fine-tuned or new) and its corpus; notify hears of a grown vocabulary."""
    if resume:
        if not paths.last.exists():
            raise ScratchGPTError(f"nothing to resume: {paths.last} does not exist; drop --resume to start")
        ckpt = load_checkpoint(paths.last, device=device)
        corpus, source = corpus_of(ckpt, None)
        return ckpt, corpus, source
    if config.init_from:
        ckpt = load_checkpoint(config.init_from, device=device)
        check_same_vocabulary(config, ckpt)
        given = config.corpus if config.corpus != TrainConfig.corpus else None  # the default: the checkpoint's own
        corpus, source = corpus_of(ckpt, given)
        old = ckpt.tokenizer.vocab_size
        ckpt = adapt_to_corpus(ckpt, corpus, lossy=config.lossy)
        if ckpt.tokenizer.vocab_size != old:
            notify(vocab_growth(corpus.name, old, ckpt.tokenizer.vocab_size))
        if ckpt.config.arch == "gpt":  # only what is given overrides the checkpoint's
            changes = {k: getattr(config, k) for k in ("dropout", "attn_dropout") if getattr(config, k) is not None}
            if changes:
                ckpt.model.set_dropout(**changes)
            if config.block_size is not None:
                ckpt.model.set_block_size(config.block_size)
        return ckpt, corpus, source
    corpus = resolve_corpus(config.corpus)
    return fresh_model(config, corpus, device), corpus, config.corpus
