"""Shared fixtures: where Tiny Shakespeare lives, and isolated user directories per test."""

from __future__ import annotations

from pathlib import Path

import pytest

from scratchgpt.data import resolve_corpus
from scratchgpt.errors import ScratchGPTError

SHAKESPEARE = Path()  # set by pytest_configure
DATA_DIR = Path()


def pytest_configure(config) -> None:
    """Find Tiny Shakespeare where ScratchGPT does: $SCRATCHGPT_DATA, then ~/.cache/scratchgpt/corpora,
    downloading it there (hash-checked) when the network allows; once, before any test points the
    cache elsewhere. Without it the run stops at once with ScratchGPT's own line on what to do."""
    global SHAKESPEARE, DATA_DIR
    try:
        SHAKESPEARE = resolve_corpus("tinyshakespeare").path
    except ScratchGPTError as e:
        pytest.exit(f"the tests train on Tiny Shakespeare: {e}", returncode=4)
    DATA_DIR = SHAKESPEARE.parent


@pytest.fixture(scope="session", autouse=True)
def _data_dir_for_child_processes():
    """Processes that module fixtures start (tests/forkserver.py) come before any per-test
    monkeypatch, so the corpus directory is in the environment for the whole session too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCRATCHGPT_DATA", str(DATA_DIR.resolve()))
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep caches, history and saved checkpoints out of the real home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    monkeypatch.setenv("SCRATCHGPT_DATA", str(DATA_DIR.resolve()))


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")
