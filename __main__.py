"""`python -m scratchgpt` is `scratchgpt`."""

from .cli.main import entry

raise SystemExit(entry())
