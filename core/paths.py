"""Where ScratchGPT keeps things on the user's machine (XDG base directories)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # core/ sits in the package root
SHIPPED_CHECKPOINTS = PACKAGE_DIR / "checkpoints"


def _xdg(var: str, fallback: str) -> Path:
    base = os.environ.get(var)
    return (Path(base) if base else Path.home() / fallback) / "scratchgpt"


def cache_dir() -> Path:
    """Downloaded corpora and tokenized corpora ($XDG_CACHE_HOME/scratchgpt)."""
    return _xdg("XDG_CACHE_HOME", ".cache")


def state_dir() -> Path:
    """REPL history ($XDG_STATE_HOME/scratchgpt)."""
    return _xdg("XDG_STATE_HOME", ".local/state")


def user_checkpoint_dir() -> Path:
    """Checkpoints the user saves from the REPL ($XDG_DATA_HOME/scratchgpt/checkpoints)."""
    return _xdg("XDG_DATA_HOME", ".local/share") / "checkpoints"
