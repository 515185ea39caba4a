"""`python -m scratchgpt` is `scratchgpt`."""

from .cli import entry

raise SystemExit(entry())
