"""Small corpora written to tmp_path, and tokenizers fitted to them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from scratchgpt.data import Corpus, resolve_corpus


@pytest.fixture
def make_corpus(tmp_path: Path) -> Callable[[bytes | str, str], Corpus]:
    """A path corpus holding the given bytes (str is written as UTF-8)."""

    def make(content: bytes | str, filename: str = "corpus.txt") -> Corpus:
        path = tmp_path / filename
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        return resolve_corpus(path)

    return make


@pytest.fixture(scope="session")
def shakespeare_head(shakespeare_text) -> str:
    """The first ~50 kB of Tiny Shakespeare: enough structure, quick to tokenize."""
    return shakespeare_text[:50_000]
