"""A conversation with a model, as token ids: what was said, what the model can still see, and /chat's framing.

`Conversation` keeps every turn's prompt and reply as ids of the current tokenizer. `prompt_ids(text)`
gives the ids a reply to text continues; `commit(context, ids, text)` makes a finished (or cut short)
reply part of the history. Everything the user should hear about but did not ask for (a cropped window,
characters the vocabulary lacks) is queued in `notices` for the front end to print.

The conversation keeps only its latest `KEPT_WINDOWS` windows of tokens (the model never sees further
back), and of a prompt longer than the window only the tail that fills it is encoded, so a long session
or a 10 MB paste costs what the window holds, not what was typed.

In /chat mode each typed line becomes a speech in the corpus's layout (model/dialogue.py) and a reply
is the answering speaker's one speech.
"""

from __future__ import annotations

from ..core.errors import ScratchGPTError
from ..model.dialogue import SPEECH_END, separator, speech, turn_opening
from ..tokenizers import Tokenizer
from ..tokenizers.base import unknown_notice

KEPT_WINDOWS = 4  # windows of tokens the conversation keeps; older ones can never reach the model again
PROMPT_MARGIN = 16  # tokens encoded beyond the window from a long prompt, so the cut's edge stays out of sight


class Conversation:
    """Token ids of one conversation with a model whose vocabulary is tokenizer and whose window is block_size."""

    def __init__(self, tokenizer: Tokenizer, block_size: int):
        self.tokenizer = tokenizer
        self.block_size = block_size
        self.ids: list[int] = []  # every turn's prompt and reply, the oldest beyond kept_tokens dropped
        self.speakers: tuple[str, str] | None = None  # (the user's speaker, the model's speaker) in /chat mode
        self.last_context: list[int] | None = None  # what the last reply continued, for /regen
        self.dropped = False  # ids has lost its oldest tokens (see KEPT_WINDOWS)
        self.notices: list[str] = []
        self._window_noticed = False
        self._unknown_reported: set[str] = set()
        self._unknown_notices: set[str] = set()  # the notices above that name unknown characters or words

    @property
    def kept_tokens(self) -> int:
        """How much of the conversation is kept, in tokens."""
        return KEPT_WINDOWS * self.block_size

    def use(self, tokenizer: Tokenizer, block_size: int, *, reencode: bool = False) -> None:
        """Go on with another model. reencode: its vocabulary may differ, so the ids are carried over as
        text (when it does); without it the old ids must keep their meaning (a grown char vocabulary)."""
        old, self.tokenizer, self.block_size = self.tokenizer, tokenizer, block_size
        if reencode and old.spec() != tokenizer.spec():
            self.ids = self._keep(tokenizer.encode(old.decode(self.ids)))
            if self.last_context is not None:
                self.last_context = self._keep(tokenizer.encode(old.decode(self.last_context)))

    def prompt_ids(self, text: str) -> list[int]:
        """The ids a reply to text continues: the conversation, then text (a chat line in /chat mode).
        NUL characters are dropped: no corpus has them, and a terminal may not show them."""
        text = text.replace("\0", "")
        prompt = self._frame(text) if self.speakers else text
        ids, cropped = self._encode_prompt(prompt)
        if cropped:  # the earlier conversation is out of sight too
            self._window_noticed = True
            self.notices.append(
                f"your text ({len(prompt):,} characters) is longer than the model's {self.block_size}-token "
                "window; it sees only the last part"
            )
            context = ids
        else:
            context = self.ids + ids
        if not context:  # nothing to condition on: start a fresh line
            context = self.tokenizer.encode("\n") or [0]
        return self._continued(self._keep(context))

    def regen_ids(self) -> list[int]:
        """The ids the last reply continued, to sample it again."""
        if self.last_context is None:
            raise ScratchGPTError("nothing to regenerate yet; type a prompt first")
        return self._continued(self.last_context)

    def _continued(self, context: list[int]) -> list[int]:
        self.last_context = context
        self._note_window(len(context))
        return context

    def commit(self, context: list[int], ids: list[int], text: str) -> None:
        """A reply to context, sampled as ids and shown as text, joins the conversation. A reply stopped or
        interrupted shows less than its ids: what was shown is kept, no more."""
        if self.tokenizer.decode(ids) != text:
            ids = self.tokenizer.encode(text)
        self.ids = self._keep(context + ids)
        self._note_window(len(self.ids))

    def clear(self) -> None:
        """Forget what was said; the speakers stay."""
        self.ids = []
        self.last_context = None
        self._window_noticed = False
        self.dropped = False

    @property
    def reply_header(self) -> str:
        """What a reply is printed under: the model's speaker in /chat mode, else nothing."""
        return f"{self.speakers[1]}:" if self.speakers else ""

    @property
    def reply_stops(self) -> list[str]:
        """Stop strings a reply has beside the user's: in /chat mode a reply is one speech."""
        return [SPEECH_END] if self.speakers else []

    def take_notices(self, *, unknown_only: bool = False) -> list[str]:
        """The notices not yet shown, in order; unknown_only: just those naming what the vocabulary lacks."""
        taken = [n for n in self.notices if n in self._unknown_notices] if unknown_only else self.notices
        self.notices = [n for n in self.notices if n not in taken]
        return taken

    def _frame(self, text: str) -> str:
        """A typed line as the chat speaker's speech, in the corpus's own layout, opening the model's turn
        (an empty line: the model's speaker speaks again)."""
        speaker, listener = self.speakers
        tail = self.tokenizer.decode(self.ids[-8:]) if self.ids else "\n\n"
        return separator(tail) + (speech(speaker, text) if text else "") + turn_opening(listener)

    def _keep(self, ids: list[int]) -> list[int]:
        if len(ids) <= self.kept_tokens:
            return ids
        self.dropped = True
        return ids[-self.kept_tokens :]

    def _encode_prompt(self, prompt: str) -> tuple[list[int], bool]:
        """prompt's ids, and whether it was cropped: of a prompt longer than the window only a
        tail that fills it is encoded (tails of doubling length until one does), so a 10 MB
        paste costs about what the window holds. Its characters the vocabulary lacks are noted."""
        need = self.block_size + PROMPT_MARGIN
        chars = 4 * need
        while chars < len(prompt):
            tail = prompt[-chars:]
            ids = self.tokenizer.encode(tail)
            if len(ids) >= need:
                self._note_unknown(tail)
                return ids[-need:], True
            chars *= 2
        self._note_unknown(prompt)
        return self.tokenizer.encode(prompt), False

    def _note_unknown(self, text: str) -> None:
        new = [p for p in self.tokenizer.unknown(text) if p not in self._unknown_reported]
        if not new:
            return
        self._unknown_reported.update(new)
        notice = unknown_notice(self.tokenizer, new)
        self._unknown_notices.add(notice)
        self.notices.append(notice)

    def _note_window(self, length: int) -> None:
        if length > self.block_size and not self._window_noticed:
            self._window_noticed = True
            self.notices.append(
                f"the conversation is longer than the model's {self.block_size}-token window; "
                "it now sees only the latest part (/clear starts afresh)"
            )
