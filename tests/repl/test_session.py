"""Session: the conversation, seeds, notices, /tokenizer, /train, /save and /load, without a terminal."""

from __future__ import annotations

import copy

import pytest
import torch

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.repl import session as session_module
from scratchgpt.repl.conversation import KEPT_WINDOWS, PROMPT_MARGIN
from scratchgpt.repl.session import Session, Settings
from scratchgpt.tokenizers import fit_tokenizer
from scratchgpt.training.config import FINE_TUNE_BATCH_TOKENS
from scratchgpt.training.start import batch_size_for


def run(reply) -> str:
    return "".join(reply)


def test_conversation_accumulates_and_a_new_turn_costs_only_its_new_tokens(session):
    tok = session.tokenizer
    session.settings.max_new_tokens = 10  # 6 + 10 + 8 tokens: inside the 32-token window
    first = session.reply("ROMEO:")
    run(first)
    second = session.reply("\nJULIET:")
    run(second)
    assert session.conversation.ids == tok.encode("ROMEO:") + first.completion.ids + tok.encode("\nJULIET:") + (
        second.completion.ids
    )
    assert tok.decode(session.conversation.ids) == "ROMEO:" + first.text + "\nJULIET:" + second.text
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
    assert session.conversation.ids == [] and session.engine.cache.pos == 0
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
    assert session.conversation.ids == first.context + again.completion.ids


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
    assert session.tokenizer.decode(session.conversation.ids) == "ROMEO:" + text


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
    assert session.tokenizer.decode(session.conversation.ids) == "ROMEO:" + "".join(printed)


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
    text = session.tokenizer.decode(session.conversation.ids)
    config = session.ckpt.config
    message = session.switch_tokenizer("word")
    assert "untrained — /train N to train it" in message
    assert session.tokenizer.name == "word"
    new = session.ckpt.config
    assert (new.n_layer, new.n_embd, new.block_size) == (config.n_layer, config.n_embd, config.block_size)
    assert new.vocab_size == session.tokenizer.vocab_size != config.vocab_size
    assert session.conversation.ids == session.tokenizer.encode(text)  # carried over, re-encoded
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


def test_train_steps_take_the_same_tokens_whatever_the_context_length(session):
    steps = []
    session.train(1, on_step=steps.append)
    assert session.block_size == 32 and steps[0].tokens == FINE_TUNE_BATCH_TOKENS  # 64 windows
    assert batch_size_for(256) == 8 and batch_size_for(128) == 16
    assert batch_size_for(4096) == 1  # a context longer than the budget: one window


def test_train_stops_between_steps_when_interrupted(session):
    from scratchgpt.core.interrupt import InterruptFlag

    flag = InterruptFlag()
    report = session.train(50, on_step=lambda info: setattr(flag, "requested", info.step == 1), interrupt=flag)
    assert report.steps == 2 and report.interrupted and report.after is not None


def test_train_on_a_new_corpus_grows_the_char_vocabulary(session, tmp_path, shakespeare_text):
    run(session.reply("ROMEO:"))
    text = session.tokenizer.decode(session.conversation.ids)
    corpus = tmp_path / "accents.txt"
    corpus.write_text(shakespeare_text[:5000].replace("e", "é").replace("a", "å"), encoding="utf-8")
    old = session.tokenizer.vocab_size
    report = session.train(2, str(corpus))
    assert report.grown_vocab == (old, old + 2)
    assert session.tokenizer.decode(session.conversation.ids) == text  # old ids kept their meaning
    assert session.corpus == str(corpus)
    assert session.tokenizer.unknown("é å") == []


def test_after_train_show_and_save_tell_the_val_loss_just_measured_on_the_corpus_trained_on(
    session, tmp_path, shakespeare_text
):
    corpus = tmp_path / "other.txt"
    corpus.write_text(shakespeare_text[-20_000:], encoding="utf-8")
    assert session.ckpt.provenance["val_loss"] == 4.0  # the checkpoint's figure, on its own corpus
    start = session.ckpt.path
    notes: list[str] = []
    report = session.train(2, str(corpus), on_note=notes.append)
    assert notes == ["measuring the loss before and after on 10 batches per split (Ctrl-C skips it)"]
    val = report.after["val"]
    assert dict(session.show())["val loss"].startswith(f"{val:.4f}, measured after /train on other;")
    saved = load_checkpoint(session.save(tmp_path / "tuned.safetensors"))
    assert saved.provenance["val_loss"] == val and saved.provenance["step"] == 2 and saved.corpus["name"] == "other"
    assert saved.provenance["fine_tunes"] == [{"from": str(start), "steps": 2, "corpus": "other"}]


def test_save_then_load_gives_the_same_next_tokens_at_temperature_zero(session, tmp_path):
    session.settings.temperature = 0
    session.train(2)
    path = session.save(tmp_path / "tuned.safetensors")
    expected = run(session.reply("ROMEO:"))
    fresh = Session(load_checkpoint(path), settings=Settings(temperature=0, max_new_tokens=20))
    assert run(fresh.reply("ROMEO:")) == expected
    assert fresh.ckpt.provenance["step"] == 2
    session.clear()
    session.load(path)
    assert run(session.reply("ROMEO:")) == expected


def test_save_without_a_path_writes_a_timestamped_file_in_the_user_checkpoint_dir(session):
    from scratchgpt.core.paths import user_checkpoint_dir

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
    assert shown["context"] == "32 tokens" and shown["seed"] == "1"
    assert shown["val loss"] == "4.0000, estimated while training; scratchgpt eval scores the whole split"
    stats = dict(session.stats())
    assert stats["turns"] == "1" and stats["tokens generated"] == "20"


def test_show_gives_an_average_of_checkpoints_no_val_loss_of_its_own(session, tmp_path):
    ckpt = session.ckpt
    train = {"val_loss": 1.4, "exported_from": ["a.safetensors", "b.safetensors", "c.safetensors"]}
    session.load(save_checkpoint(tmp_path / "avg.safetensors", ckpt.model, ckpt.tokenizer, provenance=train))
    shown = dict(session.show())["val loss"]
    assert shown == "not recorded for an average of 3 checkpoints; scratchgpt eval scores it"
    session.train(1)
    session.load(session.save(tmp_path / "tuned.safetensors"))  # a fine-tune of the average is not the average
    assert "exported_from" not in session.ckpt.provenance  # its val loss is the one /train measured, on its corpus
    val = session.ckpt.provenance["val_loss"]
    assert dict(session.show())["val loss"].startswith(f"{val:.4f}, measured after /train on tiny-shakespeare")


# --- long, odd and hostile prompts -----------------------------------------------------------------


def test_a_10mb_paste_is_cropped_to_the_window_with_one_notice_and_only_its_tail_is_encoded(
    session, monkeypatch, shakespeare_text
):
    paste = (shakespeare_text * (10_000_000 // len(shakespeare_text) + 1))[:10_000_000]
    encode, encoded = session.tokenizer.encode, []
    monkeypatch.setattr(session.tokenizer, "encode", lambda text: encoded.append(len(text)) or encode(text))
    run(session.reply("ROMEO:"))
    reply = session.reply(paste)
    assert max(encoded) < 2_000  # the tail the window needs, not the 10 MB
    block = session.block_size
    assert reply.context[-block:] == encode(paste[-block:])  # a char model: exactly the paste's last characters
    assert len(reply.context) <= block + PROMPT_MARGIN  # the earlier turn is out of sight
    run(reply)
    (notice,) = [n for n in session.take_notices() if "window" in n]  # (others: characters the tiny slice lacks)
    assert "10,000,000 characters" in notice and f"{block}-token window" in notice and "\n" not in notice
    run(session.reply(" and"))
    assert not [n for n in session.take_notices() if "window" in n]  # said once


@pytest.mark.parametrize("kind", ["char", "word", "tiktoken"])
def test_a_cropped_paste_gives_the_same_window_as_encoding_it_all(kind, shakespeare_text):
    text = shakespeare_text[:300_000]
    tokenizer = fit_tokenizer(kind, None if kind == "tiktoken" else [shakespeare_text])
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=8)
    session = Session(Checkpoint(model=build_model(config), tokenizer=tokenizer), settings=Settings(max_new_tokens=2))
    reply = session.reply(text)
    assert reply.context == tokenizer.encode(text)[-(32 + PROMPT_MARGIN) :]
    run(reply)


def test_a_long_run_without_spaces_is_cropped_without_encoding_it_whole():
    tokenizer = fit_tokenizer("tiktoken")  # BPE over one 10 MB "word" would take minutes
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=8)
    session = Session(Checkpoint(model=build_model(config), tokenizer=tokenizer), settings=Settings(max_new_tokens=2))
    reply = session.reply("a" * 10_000_000)
    assert len(reply.context) == 16 + PROMPT_MARGIN
    assert set(tokenizer.decode(reply.context)) == {"a"}
    run(reply)


def test_the_conversation_keeps_a_bounded_tail_however_long_the_session(session):
    session.settings.max_new_tokens = 25
    kept = KEPT_WINDOWS * session.block_size
    for i in range(20):
        run(session.reply(f" {i}"))
        assert len(session.conversation.ids) <= kept
    assert len(session.conversation.ids) == kept
    assert session.tokenizer.decode(session.conversation.ids).endswith(" 19" + session.last_reply.text)
    assert "older ones dropped" in dict(session.stats())["conversation"]
    session.clear()
    assert "dropped" not in dict(session.stats())["conversation"]


def test_nul_characters_are_dropped_from_prompts(session):
    reply = session.reply("RO\0ME\0O:")
    assert reply.context == session.tokenizer.encode("ROMEO:")
    run(reply)
    assert session.take_notices() == []  # not reported as an unknown character either


def test_empty_and_whitespace_prompts_continue_the_conversation(session):
    session.settings.max_new_tokens = 5
    run(session.reply(""))  # nothing at all: a fresh line to start from
    assert session.last_reply.context == session.tokenizer.encode("\n")
    before = list(session.conversation.ids)
    run(session.reply("  \n "))
    assert session.last_reply.context == before + session.tokenizer.encode("  \n ")
    run(session.reply(""))
    assert session.turn == 3 and session.take_notices() == []


# --- Ctrl-C during /train ------------------------------------------------------------------------


def weights(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_weights(model, expected: dict[str, torch.Tensor]) -> None:
    now = model.state_dict()
    assert all(torch.equal(now[k], expected[k]) for k in expected)


def greedy_of(session: Session, state: dict[str, torch.Tensor]) -> str:
    """The greedy reply to "ROMEO:" of a fresh session over the given weights: what a consistent model says."""
    model = copy.deepcopy(session.ckpt.model)
    model.load_state_dict(state)
    fresh = Session(Checkpoint(model=model, tokenizer=session.tokenizer), settings=Settings(temperature=0))
    fresh.settings.max_new_tokens = session.settings.max_new_tokens
    return run(fresh.reply("ROMEO:"))


@pytest.fixture
def adam_calls(monkeypatch):
    """Run `hook(call number)` after each call of AdamW's per-group update (two groups: matrices, then the rest)."""
    import torch.optim.adam as adam

    real, hooks, calls = adam.adam, [], []

    def counted(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        for hook in hooks:
            hook(len(calls))

    monkeypatch.setattr(adam, "adam", counted)
    return hooks


def test_keyboard_interrupt_inside_an_optimizer_step_leaves_the_last_whole_step(session, adam_calls):
    model = session.ckpt.model
    after_step: list[dict[str, torch.Tensor]] = []

    def interrupt(call: int) -> None:
        if call == 3:  # the second step has updated its first parameter group only
            raise KeyboardInterrupt

    adam_calls.append(interrupt)
    run(session.reply("ROMEO:"))
    with pytest.raises(KeyboardInterrupt):
        session.train(5, on_step=lambda info: after_step.append(weights(model)))
    assert len(after_step) == 1
    assert_weights(model, after_step[0])  # not half of step two
    assert all(p.grad is None for p in model.parameters())  # nothing left for the next /train to add
    assert session.steps_trained == 1 and not model.training and session.engine.cache.pos == 0
    session.settings.temperature = 0
    session.clear()
    assert run(session.reply("ROMEO:")) == greedy_of(session, after_step[0])  # usable at once
    assert session.train(1).steps == 1  # and trainable again


def test_sigint_inside_a_step_finishes_that_step_and_stops(session, adam_calls):
    import os
    import signal

    from scratchgpt.core.interrupt import InterruptFlag

    model = session.ckpt.model
    after_step: list[dict[str, torch.Tensor]] = []

    def ctrl_c(call: int) -> None:
        if call == 5:  # between the two parameter groups of the third step
            os.kill(os.getpid(), signal.SIGINT)

    adam_calls.append(ctrl_c)
    report = session.train(50, on_step=lambda info: after_step.append(weights(model)), interrupt=InterruptFlag())
    assert report.steps == 3 and report.interrupted
    assert_weights(model, after_step[-1])
    session.settings.temperature = 0
    assert run(session.reply("ROMEO:")) == greedy_of(session, after_step[-1])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C stops replies again


def test_ctrl_c_while_measuring_the_losses_skips_them_and_keeps_the_trained_weights(session, monkeypatch):
    from scratchgpt.training import finetune as trainer

    model, real = session.ckpt.model, trainer.estimate_loss
    live: list[dict[str, torch.Tensor]] = []

    def estimate_then_interrupt(evaluated, *args, **kwargs):
        live.append(weights(model))  # what the session's model holds while a measurement runs
        if len(live) == 2:
            raise KeyboardInterrupt
        return real(evaluated, *args, **kwargs)

    monkeypatch.setattr(trainer, "estimate_loss", estimate_then_interrupt)
    trained: list[dict[str, torch.Tensor]] = []
    report = session.train(3, on_step=lambda info: trained.append(weights(model)))
    assert report.steps == 3 and report.before is None and report.after is None
    for state in live:  # the live weights are never swapped for the old ones to measure those
        assert_weights(model, state)
        assert all(torch.equal(state[k], trained[-1][k]) for k in state)
    run(session.reply("ROMEO:"))


def test_an_int8_session_decodes_with_the_weights_train_left(tiny_checkpoint):
    from scratchgpt.model.engine import Engine

    session = Session(load_checkpoint(tiny_checkpoint), settings=Settings(seed=1), engine_options={"quantize": "int8"})
    ids = session.tokenizer.encode("ROMEO: and")

    def last_logits(engine: Engine) -> torch.Tensor:  # the last id goes through the one-token decode step
        engine.reset()
        engine.prefill(ids[:-1])
        engine.prefill(ids)
        return engine._last_logits[0]

    old = last_logits(Engine(copy.deepcopy(session.ckpt.model)))
    session.train(10)
    new = last_logits(Engine(session.ckpt.model))
    decoded = last_logits(session.engine)
    assert session.engine.copies_weights
    assert (decoded - new).abs().max() < (decoded - old).abs().max()  # not the int8 copy of the old weights
