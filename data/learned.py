"""A BPE vocabulary learned from a corpus's training split, kept in the cache beside its token files.

Learning is deterministic, so the file is named after what decides it (the corpus's sha256, the
vocabulary size, the pre-split pattern): a second run on the same corpus reads it back instead
of learning it again. The validation split (the text's last 10%) is never read while learning,
so a model's validation figure does not count text its vocabulary was fitted to.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..core import paths
from ..core.errors import ScratchGPTError
from ..tokenizers.learned import (
    DEFAULT_VOCAB_SIZE,
    PATTERN,
    LearnedBPETokenizer,
    OnMerge,
    load_tokenizer_file,
    save_tokenizer,
)
from .corpus import Corpus, iter_text
from .tokens import TRAIN_FRACTION


def text_splits(corpus: Corpus, *, lossy: bool = False) -> tuple[str, str]:
    """(train, val): the corpus's first TRAIN_FRACTION of characters, and the rest."""
    text = "".join(iter_text(corpus, lossy=lossy))
    cut = int(TRAIN_FRACTION * len(text))
    return text[:cut], text[cut:]


def training_text(corpus: Corpus, *, lossy: bool = False) -> str:
    """The part of the corpus a vocabulary may be learned from (its first TRAIN_FRACTION of characters)."""
    return text_splits(corpus, lossy=lossy)[0]


def learned_tokenizer_file(corpus: Corpus, vocab_size: int) -> Path:
    """Where learned_tokenizer keeps the vocabulary of corpus with vocab_size ids."""
    pattern = hashlib.sha256(PATTERN.encode("utf-8")).hexdigest()[:8]
    return paths.cache_dir() / "tokenizers" / f"{corpus.sha256[:16]}-bpe{vocab_size}-{pattern}.json"


def learned_tokenizer(
    corpus: Corpus,
    *,
    vocab_size: int | None = None,
    lossy: bool = False,
    on_merge: OnMerge | None = None,
    notify=None,
) -> LearnedBPETokenizer:
    """The BPE vocabulary learned from corpus's training split: read from the cache, or learned and cached."""
    vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
    path = learned_tokenizer_file(corpus, vocab_size)
    if path.is_file():
        try:
            return load_tokenizer_file(path)
        except ScratchGPTError as e:
            if notify is not None:
                notify(f"the cached vocabulary {path} is learned again: {e}")
    tokenizer = LearnedBPETokenizer.fit([training_text(corpus, lossy=lossy)], vocab_size=vocab_size, on_merge=on_merge)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, path)
    return tokenizer
