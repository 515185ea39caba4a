"""How a conversation is written for a model trained on plays and transcripts: each speech is the
speaker's name, a colon and a line break, the speech, then a blank line; the reply opens with the
answering speaker's name. The REPL's /chat and the server's chat endpoints both frame turns here.
"""

from __future__ import annotations

SPEECH_END = "\n\n"  # a reply is one speech: it stops at the blank line that closes it


def speech(speaker: str, text: str) -> str:
    """One speech in the corpus's layout: `NAME:\\ntext\\n\\n`."""
    return f"{speaker}:\n{text}{SPEECH_END}"


def turn_opening(speaker: str) -> str:
    """What the model continues to speak as speaker."""
    return f"{speaker}:\n"


def separator(tail: str) -> str:
    """The line breaks that make a new speech begin after a blank line, given the text before it."""
    newlines = len(tail) - len(tail.rstrip("\n"))
    return "\n" * max(0, 2 - newlines)
