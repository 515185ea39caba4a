"""/probs, /why, /score, /attention and /lens, driven through the real REPL on a tiny model: what they
print, that they read what the reply recorded, and one line for each odd input while the session goes on."""

from __future__ import annotations

import io
import math

import pytest
import torch

from scratchgpt.cli.console import make_console
from scratchgpt.cli.inspect_view import ShadedStream, band_style
from scratchgpt.model.checkpoint import Checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.repl.session import Session, Settings


def test_probs_on_prints_a_legend_and_the_reply_stays_plain_when_piped(drive):
    d = drive("/probs on\r", "ROMEO:\r", "/probs\r")
    assert "probabilities on" in d.out and "probability:  ≥.9" in d.out and "probabilities off" in d.out
    reply = d.session.last_reply
    assert reply.text in d.out and "\x1b" not in d.out  # no terminal here: no colour codes


def test_probs_on_a_colour_terminal_shades_each_token_by_its_band(session):
    session.settings.probs = True
    reply = session.reply("ROMEO:")
    stream = ShadedStream(reply.completion)
    pieces = [stream.shade(piece) for piece in reply]
    spans = [(span.style, piece.plain[span.start : span.end]) for piece in pieces for span in piece.spans]
    records = reply.completion.logprobs
    assert "".join(p.plain for p in pieces) == reply.text and len(records) == len(reply.completion.ids)
    assert spans[0] == (band_style(records[0].prob), reply.text[0])  # the char model: one character a token
    buffer = io.StringIO()
    console = make_console(buffer, force_terminal=True, color_system="truecolor")
    console.print(pieces[0])
    assert "\x1b[" in buffer.getvalue()


def test_why_ranks_the_alternatives_of_the_last_token_and_marks_the_chosen_one(drive):
    d = drive("ROMEO:\r", "/why\r", "/why 1\r")
    reply = d.session.last_reply
    record = reply.completion.logprobs[-1]
    assert f"token {len(reply.completion.ids)} of {len(reply.completion.ids)}" in d.out
    chosen = [line for line in d.out.splitlines() if line.endswith("← chosen")]
    assert len(chosen) == 2 and f"{record.prob:.4f}" in chosen[0] and f"{record.logprob:.3f}" in chosen[0]
    assert "entropy" in d.out and "sampled p (temp 0.8)" in d.out and "token 1 of 20" in d.out


def test_why_at_temperature_0_puts_all_the_sampled_mass_on_the_first(drive):
    d = drive("/temp 0\r", "ROMEO:\r", "/why -1\r")
    rows = [line for line in d.out.splitlines() if line.strip().startswith(("1  |", "2  |"))]
    assert rows[0].endswith("1.0000  ← chosen") and rows[1].split()[-1] == "0.0000"


def test_why_compares_with_the_settings_the_reply_was_sampled_with(drive):
    d = drive("ROMEO:\r", "/topk 3\r", "/why\r")
    assert "sampled p (temp 0.8)" in d.out and "top-k 3)" not in d.out


@pytest.mark.parametrize(
    "keys, message",
    [
        (["/why\r"], "no reply to explain yet"),
        (["ROMEO:\r", "/why 9999\r"], "the last reply has 20 tokens; /why takes 1 to 20, or -1 to -20"),
        (["ROMEO:\r", "/why 0\r"], "counts from 1"),
        (["ROMEO:\r", "/attention 99\r"], "this model has 1 layers, numbered 0 to 0"),
        (["/attention\r"], "nothing to look at yet"),
        (["/lens\r"], "nothing to look at yet"),
        (["/score\r"], "needs some text to score"),
        (["/score R\r"], "scoring needs at least two"),
    ],
)
def test_odd_input_is_one_line_and_the_session_carries_on(drive, keys, message):
    d = drive(*keys, "/temp\r")
    lines = [line for line in d.out.splitlines() if message in line]
    assert len(lines) == 1 and "temperature is 0.8" in d.out and "Traceback" not in d.out


def test_score_shows_the_text_the_rates_and_the_most_surprising_tokens(drive):
    d = drive("/score To be, or not to be\r")
    assert "To be, or not to be" in d.out and "bits/char" in d.out and "perplexity" in d.out
    assert "the 5 most surprising tokens" in d.out


def test_attention_and_lens_look_at_the_conversation(drive):
    d = drive("ROMEO:\r", "/attention\r", "/attention 0\r", "/lens\r")
    ids = d.session.conversation.ids[-d.session.block_size :]
    assert d.out.count("where the last position (") == 2 and f"token {len(ids)})" in d.out
    assert d.out.count("L0 H0 ") == 2 and d.out.count("L0 H1 ") == 2
    lens = [line for line in d.out.splitlines() if line.strip().startswith(("embed", "L0 out"))]
    assert len(lens) == 2 and all(line.count(" choice ") == 1 for line in lens)


def test_attention_and_lens_on_the_bigram_say_it_has_none(drive, session):
    torch.manual_seed(0)
    bigram = build_model(GPTConfig(vocab_size=session.tokenizer.vocab_size, arch="bigram"))
    other = Session(Checkpoint(model=bigram, tokenizer=session.tokenizer), settings=Settings(seed=1, max_new_tokens=5))
    d = drive("ROMEO:\r", "/attention\r", "/lens\r", "/why\r", session_=other)
    assert d.out.count("the bigram baseline has no attention") == 2
    assert "← chosen" in d.out  # its replies are explained all the same


def test_every_reply_keeps_one_distribution_per_token_and_computes_nothing_until_read(session):
    reply = session.reply("ROMEO:")
    "".join(reply)
    completion = reply.completion
    assert len(completion.logits) == len(completion.ids) == 20 and completion._records == []
    first = completion.logprobs[0]
    assert first.logprob == pytest.approx(float(torch.log_softmax(completion.logits[0][0], -1)[first.id]))
    assert len(first.top) == 20 and sum(math.exp(lp) for _, lp in first.top) <= 1 + 1e-6  # the session's 20


def test_tokens_shows_how_the_model_in_use_splits_a_text(drive):
    d = drive("/tokens to be or\r", "/tokens\r", "ROMEO:\r")
    assert "t|o|·|b|e|·|o|r|" in d.out and "8 tokens, 1.00 characters a token" in d.out  # the char model
    assert d.session.last_reply is not None  # an empty /tokens is one line, and the session goes on


def test_tokenizer_bpe_switches_to_the_bpe_model_and_tokens_shows_its_split(drive):
    d = drive("/tokenizer bpe\r", "/tokens the king\r")
    tokenizer = d.session.tokenizer
    assert tokenizer.name == "bpe" and d.session.ckpt.model.config.vocab_size == tokenizer.vocab_size > 256
    pieces = [tokenizer.decode([i]).replace(" ", "·") for i in tokenizer.encode("the king")]
    assert "|".join(pieces) + "|" in d.out and f"{len(pieces)} tokens" in d.out
