"""Corpora and the token batches a model trains and is evaluated on.

corpus.py   registered corpora, resolve_corpus (local, cache, or download; or a path), iter_text
tokens.py   load_tokens (tokenize once into a cached, memory-mapped file), split_tokens (90/10)
batches.py  Batches (random training/validation windows), val_windows and val_char_count for eval
"""

from __future__ import annotations

from .batches import IGNORE, Batches, val_char_count, val_windows
from .corpus import (
    CORPORA,
    Corpus,
    CorpusSource,
    check_corpus,
    corpus_cache_dir,
    data_dirs,
    file_sha256,
    iter_text,
    resolve_corpus,
)
from .tokens import load_tokens, split_tokens, token_dtype, token_file

__all__ = [
    "CORPORA",
    "IGNORE",
    "Batches",
    "Corpus",
    "CorpusSource",
    "check_corpus",
    "corpus_cache_dir",
    "data_dirs",
    "file_sha256",
    "iter_text",
    "load_tokens",
    "resolve_corpus",
    "split_tokens",
    "token_dtype",
    "token_file",
    "val_char_count",
    "val_windows",
]
