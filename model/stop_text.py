"""Token ids becoming the text a reader may see: decoded through the one streaming decoder, stop strings cut off.

Text that could be the start of a stop string is held back until it cannot be, so a stop string never
reaches the reader, even in part. `Completion` (the REPL, `scratchgpt sample`) and the server share it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..tokenizers import StreamDecoder, Tokenizer


class StopText:
    """Feed token ids with `push`, then `flush` once at the end; each returns the text now final.

    `stopped` turns True when a stop string appears (push then returns the text before it, and
    nothing more should be pushed). `text` is everything released; `decoded` counts the characters
    decoded so far, released or held back, which places each token's text within the reply.
    """

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str] = ()):
        self.stop = [s for s in stop if s]
        self.text = ""
        self.decoded = 0
        self.stopped = False
        self._decoder = StreamDecoder(tokenizer)
        self._pending = ""

    def _held(self) -> int:
        """How many trailing characters of the pending text might begin a stop string."""
        pending = self._pending
        for n in range(min(len(pending), max(map(len, self.stop)) - 1), 0, -1):
            if any(s.startswith(pending[-n:]) for s in self.stop):
                return n
        return 0

    def _release(self, n: int) -> str:
        piece, self._pending = self._pending[:n], self._pending[n:]
        self.text += piece
        return piece

    def push(self, token: int) -> str:
        new = self._decoder.push(token)
        self.decoded += len(new)
        self._pending += new
        if not self.stop:
            return self._release(len(self._pending))
        hits = [i for i in (self._pending.find(s) for s in self.stop) if i >= 0]
        if hits:
            self._pending = self._pending[: min(hits)]
            self.stopped = True
            return self._release(len(self._pending))
        return self._release(len(self._pending) - self._held())

    def flush(self) -> str:
        """The held-back rest at the end of a reply that did not stop (a cut character as U+FFFD)."""
        if self.stopped:
            return ""
        tail = self._decoder.flush()
        self.decoded += len(tail)
        self._pending += tail
        return self._release(len(self._pending))
