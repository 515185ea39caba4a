"""A tiny char model on a slice of Tiny Shakespeare, saved as a checkpoint, and a REPL driven by keystrokes."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import torch
from prompt_toolkit.history import InMemoryHistory
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from scratchgpt.cli.console import make_console
from scratchgpt.data import resolve_corpus
from scratchgpt.model.checkpoint import load_checkpoint, save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.repl.app import Repl
from scratchgpt.repl.session import Session, Settings
from scratchgpt.tokenizers import fit_tokenizer

CORPUS_CHARS = 30_000


@pytest.fixture(autouse=True)
def _one_torch_thread(monkeypatch):
    """Tiny models run fastest on one thread, and the CI machine's cores are shared: OpenMP threads
    spinning against another process make a 5k-parameter model 40x slower. Subprocesses too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory, shakespeare_text) -> Path:
    path = tmp_path_factory.mktemp("corpus") / "tiny-shakespeare.txt"
    extra = "\n/0123456789\n"  # so that typed commands and numbers are in the vocabulary too
    path.write_text(shakespeare_text[:CORPUS_CHARS] + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny_corpus) -> Path:
    """An untrained 1-layer char model (block 32) whose corpus is the tiny slice."""
    corpus = resolve_corpus(tiny_corpus)
    tokenizer = fit_tokenizer("char", [tiny_corpus.read_text(encoding="utf-8")])
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    record = {"name": corpus.name, "sha256": corpus.sha256, "source": str(tiny_corpus)}
    return save_checkpoint(path, model, tokenizer, corpus=record, provenance={"step": 0, "val_loss": 4.0})


@pytest.fixture
def session(tiny_checkpoint) -> Session:
    return Session(load_checkpoint(tiny_checkpoint), settings=Settings(seed=1, max_new_tokens=20))


class Driven:
    """A Repl fed keystrokes through a pipe; `out` is everything its console printed."""

    def __init__(self, session: Session):
        self.session = session
        self.buffer = io.StringIO()
        self._pipe = create_pipe_input()
        self.pipe = self._pipe.__enter__()
        self.repl = Repl(
            session, input=self.pipe, output=DummyOutput(), console=make_console(self.buffer), history=InMemoryHistory()
        )

    def run(self, *keys: str) -> int:
        """Type keys (each "...\\r" is one line), then Ctrl-D unless the keys end the session; the exit code."""
        for k in keys:
            self.pipe.send_text(k)
        self.pipe.close()
        return self.repl.run()

    @property
    def out(self) -> str:
        return self.buffer.getvalue()

    def close(self) -> None:
        self._pipe.__exit__(None, None, None)


@pytest.fixture
def drive(session):
    """drive(*keys) runs the REPL over the keys and returns the Driven (session, out)."""
    made = []

    def run(*keys: str, session_: Session | None = None) -> Driven:
        d = Driven(session_ or session)
        made.append(d)
        d.code = d.run(*keys)
        return d

    yield run
    for d in made:
        d.close()
