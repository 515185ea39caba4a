"""Conversation: the ids kept, the window, /chat's framing and the notices, with a tokenizer and no model."""

from __future__ import annotations

import pytest

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.dialogue import SPEECH_END
from scratchgpt.repl.conversation import KEPT_WINDOWS, PROMPT_MARGIN, Conversation
from scratchgpt.tokenizers import fit_tokenizer

BLOCK = 8
TEXT = "ROMEO:\nJULIET:\nabcdefghijklmnopqrstuvwxyz .,!?\n"


@pytest.fixture
def char():
    return fit_tokenizer("char", [TEXT])


@pytest.fixture
def conversation(char) -> Conversation:
    return Conversation(char, BLOCK)


def test_a_reply_joins_the_conversation_after_the_context_it_continued(conversation, char):
    context = conversation.prompt_ids("abc")
    assert context == char.encode("abc") and conversation.last_context == context
    conversation.commit(context, char.encode("def"), "def")
    assert char.decode(conversation.ids) == "abcdef"
    assert conversation.prompt_ids("g") == char.encode("abcdefg")  # the next turn continues it all


def test_a_reply_cut_short_keeps_only_the_text_that_was_shown(conversation, char):
    context = conversation.prompt_ids("ab")
    conversation.commit(context, char.encode("cdef"), "cd")  # a stop string or Ctrl-C after "cd"
    assert char.decode(conversation.ids) == "abcd"


def test_trimming_keeps_the_newest_ids_and_notes_the_loss_once(conversation, char):
    assert conversation.kept_tokens == KEPT_WINDOWS * BLOCK
    text = "abcdefghijklmnopqrstuvwxyz" * 2
    conversation.commit([], char.encode(text), text)
    assert conversation.ids == char.encode(text)[-conversation.kept_tokens :] and conversation.dropped
    (notice,) = conversation.take_notices()
    assert f"{BLOCK}-token window" in notice and "/clear" in notice
    conversation.commit(conversation.prompt_ids("a"), char.encode("b"), "b")
    assert len(conversation.ids) == conversation.kept_tokens and conversation.take_notices() == []  # said once


def test_a_short_conversation_drops_nothing_and_says_nothing(conversation, char):
    conversation.commit([], char.encode("abcdefg"), "abcdefg")  # within the window
    assert not conversation.dropped and conversation.take_notices() == []


def test_a_prompt_longer_than_the_window_is_cropped_to_its_tail_and_hides_the_earlier_turns(conversation, char):
    conversation.commit([], char.encode("xyz"), "xyz")
    prompt = "abcdefghijklmnopqrstuvwxyz" * 4
    context = conversation.prompt_ids(prompt)
    assert context == char.encode(prompt)[-(BLOCK + PROMPT_MARGIN) :]
    (notice,) = conversation.take_notices()
    assert f"your text ({len(prompt):,} characters)" in notice and "sees only the last part" in notice


def test_chat_mode_frames_a_line_as_a_speech_and_opens_the_answer(conversation, char):
    conversation.speakers = ("ROMEO", "JULIET")
    context = conversation.prompt_ids("hi")
    assert char.decode(context) == "ROMEO:\nhi\n\nJULIET:\n"
    assert conversation.reply_header == "JULIET:" and conversation.reply_stops == [SPEECH_END]
    conversation.commit(context, char.encode("yes\n"), "yes\n")
    assert char.decode(conversation.prompt_ids("")) == "ROMEO:\nhi\n\nJULIET:\nyes\n\nJULIET:\n"  # speaks again


def test_plain_mode_adds_no_header_and_no_stop(conversation):
    assert conversation.reply_header == "" and conversation.reply_stops == []


def test_clear_forgets_what_was_said_but_keeps_the_speakers(conversation, char):
    conversation.speakers = ("ROMEO", "JULIET")
    conversation.commit(conversation.prompt_ids("a" * 40), char.encode("b"), "b")
    conversation.clear()
    assert conversation.ids == [] and conversation.last_context is None and not conversation.dropped
    assert conversation.speakers == ("ROMEO", "JULIET")
    with pytest.raises(ScratchGPTError, match="nothing to regenerate yet"):
        conversation.regen_ids()


def test_regen_continues_the_same_context_again(conversation, char):
    context = conversation.prompt_ids("abc")
    conversation.commit(context, char.encode("d"), "d")
    assert conversation.regen_ids() == context


def test_another_vocabulary_carries_the_conversation_over_as_text(conversation, char):
    conversation.commit(conversation.prompt_ids("ab"), char.encode("c"), "c")
    other = fit_tokenizer("char", ["cba"])  # the same characters under other ids
    assert other.encode("abc") != char.encode("abc")
    conversation.use(other, BLOCK, reencode=True)
    assert conversation.ids == other.encode("abc") and conversation.last_context == other.encode("ab")


def test_without_reencode_the_ids_are_kept_as_they_are(conversation, char):
    conversation.commit(conversation.prompt_ids("ab"), char.encode("c"), "c")
    grown = char.extend(["ä"])  # old characters keep their ids
    conversation.use(grown, 2 * BLOCK)
    assert conversation.ids == char.encode("abc") and conversation.kept_tokens == KEPT_WINDOWS * 2 * BLOCK


def test_characters_the_vocabulary_lacks_are_named_once_and_can_be_taken_alone(conversation, char):
    conversation.commit([], char.encode("abcdefghij"), "abcdefghij")  # a window notice first
    conversation.prompt_ids("a@b")
    assert conversation.take_notices(unknown_only=True) == [
        "not in this model's char vocabulary, so they are approximated or dropped: '@'"
    ]
    (window,) = conversation.take_notices()  # the other notice waits for its turn
    assert "window" in window
    conversation.prompt_ids("@@")
    assert conversation.take_notices() == []  # named once per conversation
