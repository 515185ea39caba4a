"""No surprises on screen: no <unk> in a reply, a final newline, word-wrapped notes and help, type-ahead
kept for the next prompt, eval's progress on a terminal, and the checkpoint named is the one used."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from pathlib import Path

import pexpect
import pytest
import torch

from scratchgpt.data import resolve_corpus
from scratchgpt.model.checkpoint import save_checkpoint
from scratchgpt.model.engine import Completion, Engine
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.sampling_settings import SamplingSettings
from scratchgpt.tokenizers import fit_tokenizer

REPL = shutil.which("scratchgpt-repl")
SCRATCHGPT = shutil.which("scratchgpt")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm", "SCRATCHGPT_NOHISTORY": "1"}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shakespeare_text) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


def tiny(path: Path, corpus: Path, tokenizer: str) -> Path:
    """An untrained 1-layer model on corpus."""
    tok = fit_tokenizer(
        tokenizer, [corpus.read_text(encoding="utf-8")], **({"vocab_size": 64} if tokenizer == "word" else {})
    )
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    data = resolve_corpus(corpus)
    record = {"name": data.name, "sha256": data.sha256, "source": str(corpus)}
    return save_checkpoint(path, model, tok, corpus=record, provenance={"step": 0})


@pytest.fixture(scope="module")
def char_checkpoint(tmp_path_factory, corpus) -> Path:
    return tiny(tmp_path_factory.mktemp("ckpt") / "char.safetensors", corpus, "char")


def test_the_word_model_never_samples_its_unknown_token_but_eval_still_scores_it(tmp_path, corpus):
    from scratchgpt.model.checkpoint import load_checkpoint
    from scratchgpt.model.evaluate import evaluate_windows

    ckpt = load_checkpoint(tiny(tmp_path / "word.safetensors", corpus, "word"))
    assert ckpt.tokenizer.never_sampled == (0,)
    unk_first = torch.zeros(ckpt.tokenizer.vocab_size)
    unk_first[0] = 50.0  # a model that all but always predicts <unk>, as an undertrained word model often does
    ckpt.model.lm_head.register_forward_hook(lambda module, inputs, logits: logits + unk_first)
    engine = Engine(ckpt.model)
    for temperature in (0.0, 1.0):  # greedy would pick <unk> every time, sampling nearly so
        settings = SamplingSettings(temperature=temperature, max_new_tokens=40, seed=1)
        completion = Completion(
            engine,
            ckpt.tokenizer,
            ckpt.tokenizer.encode("First Citizen:"),
            settings,
            generator=torch.Generator().manual_seed(1),
        )
        text = "".join(completion)
        assert len(completion.ids) == 40 and 0 not in completion.ids and "<unk>" not in text
    x = torch.tensor([[1, 2, 3]])
    y = torch.tensor([[0, 0, 0]])  # eval scores <unk> as the model predicts it: a near-certain token
    total, count = evaluate_windows(ckpt.model, [(x, y)])
    assert count == 3 and total / count < 0.01


def test_piped_output_ends_with_a_newline_and_the_stats_line_has_a_line_of_its_own(char_checkpoint):
    argv = [REPL, "--checkpoint", str(char_checkpoint), "--len", "12", "--seed", "1", "--temp", "0"]
    plain = subprocess.run(argv, input=b"ROMEO:", capture_output=True, env=ENV, timeout=60)
    both = subprocess.run(
        [*argv, "--verbose"], input=b"ROMEO:", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV, timeout=60
    )
    assert plain.returncode == both.returncode == 0 and plain.stdout.endswith(b"\n")
    reply = plain.stdout
    assert both.stdout.startswith(reply)  # the reply, its newline, then stderr's stats
    (stats,) = both.stdout[len(reply) :].decode().splitlines()
    assert stats.startswith("12 tokens · ")


def test_notes_and_help_wrap_between_words_on_a_terminal(char_checkpoint):
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from scratchgpt.cli.console import make_console
    from scratchgpt.model.checkpoint import load_checkpoint
    from scratchgpt.repl.app import Repl
    from scratchgpt.repl.commands import lookup
    from scratchgpt.repl.session import Session, Settings

    buffer = io.StringIO()
    console = make_console(buffer, force_terminal=True, width=40, color_system=None)
    session = Session(load_checkpoint(char_checkpoint), settings=Settings(seed=1, max_new_tokens=3))
    with create_pipe_input() as pipe:
        repl = Repl(session, input=pipe, output=DummyOutput(), console=console)
        repl.handle("/help set")
        session.notices.append(
            "the conversation is longer than the model's 32-token window; it now sees only "
            "the latest part (/clear starts afresh)"
        )
        repl.notices()
    lines = buffer.getvalue().splitlines()
    assert len(lines) > 4 and all(len(line) <= 40 for line in lines), lines
    words = " ".join(lines).split()
    for word in (lookup("set").details + " the latest part (/clear starts afresh)").split():
        assert word in words, word  # every word whole: none cut across two lines


@pytest.mark.slow
def test_keys_typed_during_a_reply_go_to_the_next_prompt_not_into_the_reply(char_checkpoint):
    child = pexpect.spawn(
        REPL,
        ["--checkpoint", str(char_checkpoint), "--seed", "1", "--len", "100000"],
        env=ENV,
        encoding="utf-8",
        timeout=30,
        dimensions=(30, 200),
    )
    child.expect_exact("/? lists the commands")
    child.expect_exact(">>>")
    child.send("ROMEO:\r")
    child.expect(pexpect.TIMEOUT, timeout=1.0)  # streaming
    child.send("/len 7")  # typed while the reply streams, no Enter
    child.expect(pexpect.TIMEOUT, timeout=1.0)
    reply = child.before
    child.sendintr()
    child.expect_exact("stopped")
    child.expect_exact(">>>")
    child.send("\r")  # Enter sends what was typed ahead
    child.expect_exact("length set to 7 tokens")
    child.send("/bye\r")
    child.expect(pexpect.EOF)
    assert "/len 7" not in reply and len(reply) > 100


def test_eval_shows_progress_on_a_terminal_and_nothing_more_when_piped(char_checkpoint, tmp_path):
    env = {**ENV, "XDG_CACHE_HOME": str(tmp_path), "COLUMNS": "100"}
    argv = ["eval", "--checkpoint", str(char_checkpoint), "--json", "--batch-size", "1"]
    child = pexpect.spawn(SCRATCHGPT, argv, env=env, encoding="utf-8", timeout=60, dimensions=(20, 100))
    child.expect_exact("scoring the val split")
    child.expect_exact('"val_nats_per_token"')
    child.expect(pexpect.EOF)
    piped = subprocess.run([SCRATCHGPT, *argv], capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and piped.stderr == "" and piped.stdout.startswith("{")


def test_sample_loads_the_checkpoint_named_and_refuses_a_tokenizer_that_disagrees(char_checkpoint, capsys):
    from scratchgpt.cli.common import run_entry_point
    from scratchgpt.cli.main import main

    code = run_entry_point(main, ["sample", str(char_checkpoint), "--tokenizer", "word", "-n", "3"])
    out, err = capsys.readouterr()
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "has a char vocabulary, not word; drop --tokenizer" in err
    code = run_entry_point(main, ["sample", str(char_checkpoint), "--tokenizer", "char", "-n", "3", "-p", "AB"])
    out, _ = capsys.readouterr()
    assert code == 0 and out.startswith("AB") and len(out) == 2 + 3 + 1
