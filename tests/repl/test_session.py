"""Session: the conversation, seeds, notices, /tokenizer, /train, /save and /load, without a terminal."""

from __future__ import annotations

import pytest
import torch

from scratchgpt.errors import ScratchGPTError
from scratchgpt.model.checkpoint import load_checkpoint, save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.repl import session as session_module
from scratchgpt.repl.session import Session, Settings
from scratchgpt.tokenizers import fit_tokenizer


def run(reply) -> str:
    return "".join(reply)


def test_conversation_accumulates_and_a_new_turn_costs_only_its_new_tokens(session):
    tok = session.tokenizer
    session.settings.max_new_tokens = 10  # 6 + 10 + 8 tokens: inside the 32-token window
    first = session.reply("ROMEO:")
    run(first)
    second = session.reply("\nJULIET:")
    run(second)
    assert session.conversation == tok.encode("ROMEO:") + first.completion.ids + tok.encode("\nJULIET:") + (
        second.completion.ids
    )
    assert tok.decode(session.conversation) == "ROMEO:" + first.text + "\nJULIET:" + second.text
    assert second.prompt_tokens == len(tok.encode("\nJULIET:"))  # the KV cache held the rest


def test_the_same_seed_replays_a_session_exactly(tiny_checkpoint):
    def transcript(seed: int) -> list[str]:
        s = Session(load_checkpoint(tiny_checkpoint), settings=Settings(seed=seed, max_new_tokens=15))
        return [run(s.reply("ROMEO:")), run(s.reply(" and")), run(s.regen())]

    assert transcript(7) == transcript(7)
    assert transcript(7) != transcript(8)


def test_each_turn_samples_with_its_own_seed(session):
    a = run(session.reply("ROMEO:"))
    session.clear()
    b = run(session.reply("ROMEO:"))
    assert a != b  # same context, the next turn number
    session.reseed(session.settings.seed)
    session.clear()
    assert run(session.reply("ROMEO:")) == a  # /seed restarts the turn count


def test_temperature_zero_is_deterministic_whatever_the_seed(tiny_checkpoint):
    texts = set()
    for seed in (1, 2, 3):
        s = Session(load_checkpoint(tiny_checkpoint), settings=Settings(seed=seed, temperature=0, max_new_tokens=15))
        texts.add(run(s.reply("ROMEO:")))
    assert len(texts) == 1


def test_clear_empties_the_conversation_and_keeps_the_settings(session):
    session.settings.temperature = 0.3
    run(session.reply("ROMEO:"))
    session.clear()
    assert session.conversation == [] and session.engine.cache.pos == 0
    assert session.settings.temperature == 0.3
    with pytest.raises(ScratchGPTError, match="nothing to regenerate"):
        session.regen()


def test_regen_resamples_the_last_reply_from_the_same_context(session):
    run(session.reply("ROMEO:"))
    first = session.last_reply
    again = session.regen()
    run(again)
    assert again.context == first.context
    assert again.text != first.text
    assert session.conversation == first.context + again.completion.ids


def test_stop_string_ends_the_reply_before_it(session):
    session.settings.temperature = 0
    greedy = run(session.reply("ROMEO:"))
    stop = greedy[5:7]
    session.clear()
    session.settings.stop = [stop]
    reply = session.reply("ROMEO:")
    text = run(reply)
    assert text == greedy[: greedy.index(stop)]
    assert reply.stop_reason == "stop"
    assert session.tokenizer.decode(session.conversation) == "ROMEO:" + text


def test_interrupted_reply_keeps_what_was_printed(session):
    session.settings.max_new_tokens = 30
    printed = []
    with pytest.raises(KeyboardInterrupt):
        with session.reply("ROMEO:") as reply:
            for piece in reply:
                printed.append(piece)
                if len(printed) == 5:
                    raise KeyboardInterrupt  # Ctrl-C while the front end prints
    assert reply.interrupted and reply.stop_reason is None
    assert session.tokenizer.decode(session.conversation) == "ROMEO:" + "".join(printed)


def test_cropping_to_the_window_is_announced_once(session):
    session.settings.max_new_tokens = 20  # block_size is 32
    run(session.reply("ROMEO:"))
    assert session.take_notices() == []
    run(session.reply(" more words"))
    notices = session.take_notices()
    assert len(notices) == 1 and "32-token window" in notices[0]
    run(session.reply(" and more"))
    assert session.take_notices() == []
    session.clear()
    run(session.reply("x" * 40))
    assert "window" in session.take_notices()[0]  # a new conversation can overflow again


def test_characters_outside_the_vocabulary_are_named_once(session):
    run(session.reply("héllo ☃"))
    (notice,) = session.take_notices()
    assert "'é'" in notice and "'☃'" in notice and "char vocabulary" in notice
    session.clear()
    run(session.reply("☃ again é"))
    assert session.take_notices() == []


def test_chat_mode_frames_each_line_in_the_corpus_layout(session):
    session.set_chat(("ROMEO", "JULIET"))
    reply = session.reply("Good morrow.")
    assert reply.header == "JULIET:"
    assert session.tokenizer.decode(reply.context) == "ROMEO:\nGood morrow.\n\nJULIET:\n"
    assert "\n\n" in reply.completion.stop  # her speech ends at the blank line
    text = run(reply)
    second = session.reply("Farewell.")
    decoded = session.tokenizer.decode(second.context)
    assert decoded.startswith("ROMEO:\nGood morrow.\n\nJULIET:\n" + text)
    assert decoded.endswith("\n\nROMEO:\nFarewell.\n\nJULIET:\n")
    assert "\n\n\n" not in decoded[len(decoded) - len("\n\nROMEO:\nFarewell.\n\nJULIET:\n") - 1 :]
    run(second)
    again = session.tokenizer.decode(session.reply("").context)  # an empty line: she speaks on
    assert again.endswith("\n\nJULIET:\n") and again.count("ROMEO:\n") == 2  # no empty ROMEO speech
    session.set_chat(None)
    assert session.tokenizer.decode(session.reply("x").context).endswith("x")


def test_switching_to_a_vocabulary_without_a_shipped_model_makes_a_fresh_one(session, monkeypatch):
    monkeypatch.setattr(session_module, "shipped_checkpoint", lambda name: None)
    run(session.reply("ROMEO: thou art"))
    text = session.tokenizer.decode(session.conversation)
    config = session.ckpt.config
    message = session.switch_tokenizer("word")
    assert "untrained — /train N to train it" in message
    assert session.tokenizer.name == "word"
    new = session.ckpt.config
    assert (new.n_layer, new.n_embd, new.block_size) == (config.n_layer, config.n_embd, config.block_size)
    assert new.vocab_size == session.tokenizer.vocab_size != config.vocab_size
    assert session.conversation == session.tokenizer.encode(text)  # carried over, re-encoded
    run(session.reply(" and"))  # the fresh model generates
    assert "already using" in session.switch_tokenizer("word")


def test_switching_to_a_vocabulary_with_a_shipped_model_loads_it(session, monkeypatch, tmp_path, tiny_corpus):
    tokenizer = fit_tokenizer("word", [tiny_corpus.read_text()], vocab_size=300)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=8))
    shipped = save_checkpoint(tmp_path / "shakespeare-word.safetensors", model, tokenizer)
    monkeypatch.setattr(session_module, "shipped_checkpoint", lambda name: shipped if name == "word" else None)
    message = session.switch_tokenizer("word")
    assert "shipped model shakespeare-word.safetensors" in message
    assert session.ckpt.path == shipped and session.block_size == 16


def test_train_changes_the_weights_and_reports_losses_before_and_after(session):
    before = {k: v.clone() for k, v in session.ckpt.model.state_dict().items()}
    run(session.reply("ROMEO:"))
    steps = []
    report = session.train(3, on_step=steps.append)
    assert [s.step for s in steps] == [0, 1, 2] and report.steps == 3 and len(report.losses) == 3
    assert set(report.before) == set(report.after) == {"train", "val"}
    assert report.after["train"] < report.before["train"]
    after = session.ckpt.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert session.engine.cache.pos == 0  # the cache of the old weights is gone
    assert not session.ckpt.model.training
    run(session.reply(" and"))  # the session goes on with the new weights


def test_train_stops_between_steps_when_interrupted(session):
    from scratchgpt.model.trainer import InterruptFlag

    flag = InterruptFlag()
    report = session.train(50, on_step=lambda info: setattr(flag, "requested", info.step == 1), interrupt=flag)
    assert report.steps == 2 and report.interrupted and report.after is not None


def test_train_on_a_new_corpus_grows_the_char_vocabulary(session, tmp_path, shakespeare_text):
    run(session.reply("ROMEO:"))
    text = session.tokenizer.decode(session.conversation)
    corpus = tmp_path / "accents.txt"
    corpus.write_text(shakespeare_text[:5000].replace("e", "é").replace("a", "å"), encoding="utf-8")
    old = session.tokenizer.vocab_size
    report = session.train(2, str(corpus))
    assert report.grown_vocab == (old, old + 2)
    assert session.tokenizer.decode(session.conversation) == text  # old ids kept their meaning
    assert session.corpus == str(corpus)
    assert session.tokenizer.unknown("é å") == []


def test_save_then_load_gives_the_same_next_tokens_at_temperature_zero(session, tmp_path):
    session.settings.temperature = 0
    session.train(2)
    path = session.save(tmp_path / "tuned.safetensors")
    expected = run(session.reply("ROMEO:"))
    fresh = Session(load_checkpoint(path), settings=Settings(temperature=0, max_new_tokens=20))
    assert run(fresh.reply("ROMEO:")) == expected
    assert fresh.ckpt.train["step"] == 2
    session.clear()
    session.load(path)
    assert run(session.reply("ROMEO:")) == expected


def test_save_without_a_path_writes_a_timestamped_file_in_the_user_checkpoint_dir(session):
    from scratchgpt.paths import user_checkpoint_dir

    path = session.save()
    assert path.parent == user_checkpoint_dir() and path.exists()
    assert path.name.startswith("tiny+") and path.suffix == ".safetensors"


def test_load_of_a_bad_file_raises_one_line_and_keeps_the_model(session, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    model = session.ckpt.model
    for path in (bad, tmp_path / "missing.safetensors", tmp_path):
        with pytest.raises(ScratchGPTError) as e:
            session.load(path)
        assert "\n" not in str(e.value)
    assert session.ckpt.model is model


def test_show_and_stats_describe_model_and_settings(session):
    run(session.reply("ROMEO:"))
    shown = dict(session.show())
    assert shown["vocabulary"] == f"char, {session.tokenizer.vocab_size} tokens"
    assert shown["context"] == "32 tokens" and shown["seed"] == "1" and shown["val loss"] == "4.0000"
    stats = dict(session.stats())
    assert stats["turns"] == "1" and stats["tokens generated"] == "20"
