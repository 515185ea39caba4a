"""What the model reads for a chat: the same speeches the REPL's /chat writes."""

from __future__ import annotations

import pytest

pytest.importorskip("starlette")

from scratchgpt.serve.common import ApiError, chat_text  # noqa: E402


def test_chat_messages_become_speeches_opening_the_assistants_turn():
    messages = [
        {"role": "system", "content": "A scene in Verona. "},
        {"role": "user", "content": "Who goes there?"},
        {"role": "assistant", "content": "A friend."},
        {"role": "user", "name": "BENVOLIO", "content": [{"type": "text", "text": "Speak"}, {"type": "image"}]},
    ]
    assert chat_text(messages, ("ROMEO", "JULIET")) == (
        "A scene in Verona.\n\nROMEO:\nWho goes there?\n\nJULIET:\nA friend.\n\nBENVOLIO:\nSpeak\n\nJULIET:\n"
    )


@pytest.mark.parametrize("messages", [[], "hi", [{"role": "robot", "content": "x"}], [{"role": "user"}]])
def test_malformed_messages_are_a_400_naming_the_field(messages):
    with pytest.raises(ApiError) as e:
        chat_text(messages, ("USER", "ASSISTANT"))
    assert e.value.status == 400 and e.value.param.startswith("messages")
