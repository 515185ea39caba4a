"""The page at `/` (static/index.html, shipped as package data) and the two calls only it makes:
POST /api/inspect, the attention and logit lens at one position, and POST /api/score, the surprisal
of a pasted text. The numbers come from model/inspection.py, the same as `scratchgpt inspect|score --json`.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from ..model.inspection import inspect_text
from ..tokenizers import Tokenizer

LENS_TOP = 5  # tokens per logit-lens row, as `scratchgpt inspect` shows


def page_html() -> str:
    """The page, read at each request (it is small), so an edited file shows on reload."""
    return (files("scratchgpt.serve") / "static" / "index.html").read_text(encoding="utf-8")


def content_security_policy(html: str) -> str:
    """What the browser may do on the page: run only its own inline script (named by its hash), talk only
    to this server, load nothing from another host, and not be framed by another site."""
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.DOTALL)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return (
        f"default-src 'none'; script-src {hashes}; style-src 'unsafe-inline'; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def window_tail(tokenizer: Tokenizer, text: str, block_size: int) -> tuple[str, int]:
    """The end of text that fits the model's window, and how many tokens before it were left out.

    A scored text may be longer than the window; the model never saw more than a window at once, so
    the attention at its far end is over the last block_size tokens. Re-encoding the decoded tail can
    merge differently at the cut (BPE), so characters come off its front until it fits.
    """
    ids = tokenizer.encode(text)
    if len(ids) <= block_size:
        return text, 0
    tail = tokenizer.decode(ids[-block_size:])
    while len(tokenizer.encode(tail)) > block_size:
        tail = tail[1:]
    return tail, len(ids) - len(tokenizer.encode(tail))


def inspect_window(model, tokenizer: Tokenizer, text: str) -> dict:
    """inspect_text's object for the last window of text, with "cropped": the tokens left out before it."""
    tail, cropped = window_tail(tokenizer, text, model.config.block_size)
    return {**inspect_text(model, tokenizer, tail, top=LENS_TOP), "cropped": cropped}
