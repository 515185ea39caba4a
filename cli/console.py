"""The rich console every front end prints through: text as it is, and no colour where none belongs."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console


def make_console(file=None, **options: Any) -> Console:
    """A rich console that prints text as it is: no markup, highlighting or emoji (a path or a sampled
    text with brackets in it prints as written); no ANSI codes at all under NO_COLOR or when the output
    is not a terminal. options go to rich's Console."""
    from rich.console import Console

    if os.environ.get("NO_COLOR"):
        options["color_system"] = None
    options.setdefault("soft_wrap", True)
    return Console(file=file, markup=False, highlight=False, emoji=False, **options)
