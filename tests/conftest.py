"""Shared fixtures: where Tiny Shakespeare lives, and isolated user directories per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("SCRATCHGPT_DATA", Path(__file__).resolve().parents[1] / "../shared/data"))
SHAKESPEARE = DATA_DIR / "tinyshakespeare.txt"


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
    if not SHAKESPEARE.exists():
        pytest.fail(f"Tiny Shakespeare not found at {SHAKESPEARE}; set SCRATCHGPT_DATA")
    return SHAKESPEARE.read_text(encoding="utf-8")
