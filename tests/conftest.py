"""Shared fixtures: where Tiny Shakespeare lives, and isolated user directories per test."""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pickle
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.data import resolve_corpus

NANOGPT_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # nanoGPT's shakespeare_char
SHAKESPEARE = Path()  # set by pytest_configure
DATA_DIR = Path()


def pytest_configure(config) -> None:
    """Find Tiny Shakespeare where ScratchGPT does: $SCRATCHGPT_DATA, then ~/.cache/scratchgpt/corpora,
    downloading it there (hash-checked) when the network allows; once, before any test points the
    cache elsewhere. Without it the run stops at once with ScratchGPT's own line on what to do."""
    global SHAKESPEARE, DATA_DIR
    try:
        SHAKESPEARE = resolve_corpus("tinyshakespeare").path
    except ScratchGPTError as e:
        pytest.exit(f"the tests train on Tiny Shakespeare: {e}", returncode=4)
    DATA_DIR = SHAKESPEARE.parent
    if os.environ.get("PYTEST_XDIST_WORKER"):
        one_thread_per_worker()


def one_thread_per_worker() -> None:
    """Under pytest-xdist each worker takes one core: with torch's default of a thread per core, two workers'
    OpenMP threads would spin against each other (and against the processes tests start, which inherit this).
    A test that needs another count sets it and puts this one back, as tests/model/test_threads.py does."""
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto` (pyproject's addopts): a worker per core, at most 4, since each slow test takes a core and
    up to a GiB of memory of its own."""
    from scratchgpt.core.cores import cpu_threads

    return min(cpu_threads(), 4)


def pytest_collection_modifyitems(config, items) -> None:
    """Under pytest-xdist the slow tests go first (in their order), so that the longest ones start at once
    and the many short ones fill in around them, rather than one long test running on alone at the end."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def _data_dir_for_child_processes():
    """Processes that module fixtures start (tests/forkserver.py) come before any per-test
    monkeypatch, so the corpus directory is in the environment for the whole session too."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SCRATCHGPT_DATA", str(DATA_DIR.resolve()))
        yield


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory, monkeypatch):
    """Keep caches, history and saved checkpoints out of the real home directory."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "share"))
    monkeypatch.setenv("SCRATCHGPT_DATA", str(DATA_DIR.resolve()))


@pytest.fixture(scope="session")
def shakespeare_text() -> str:
    return SHAKESPEARE.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def shipped_eval(tmp_path_factory):
    """`scratchgpt eval --checkpoint SHIPPED --json [FLAGS]` of a shipped model, run once per vocabulary and
    flags in a session (in all pytest-xdist workers together): the whole val split takes tens of seconds, and
    several tests read the same figure."""
    from scratchgpt.cli.common import run_entry_point
    from scratchgpt.cli.main import main
    from scratchgpt.model.checkpoint import shipped_checkpoint

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the folder every pytest-xdist worker's own temporary folder is in

    def run(vocabulary: str, *flags: str) -> dict:
        result = shared / ("shipped-eval-" + "-".join((vocabulary, *flags)) + ".json")
        with FileLock(f"{result}.lock"):  # a second worker waits for the first's figure rather than repeat it
            if not result.exists():
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    argv = ["eval", "--checkpoint", str(shipped_checkpoint(vocabulary)), "--json", *flags]
                    assert run_entry_point(main, argv) == 0
                result.write_text(out.getvalue(), encoding="utf-8")
            return json.loads(result.read_text(encoding="utf-8"))

    return run


@pytest.fixture(scope="session")
def transformers():
    """Hugging Face transformers (a test-only dependency), with its own `tokenizers` package.

    `python -m pytest` from the repository root puts the root on sys.path, where our tokenizers/
    folder would shadow Hugging Face's; it is imported once from the other entries, then cached.
    """
    root = Path(__file__).resolve().parents[1]
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if Path(p or ".").resolve() != root]
    try:
        importlib.import_module("tokenizers")  # Hugging Face's, in sys.modules from now on
        return importlib.import_module("transformers")
    finally:
        sys.path[:] = saved


@pytest.fixture(scope="session")
def make_hf_gpt2(tmp_path_factory, transformers):
    """Tiny random transformers GPT2LMHeadModels saved with save_pretrained, no network: call with a
    name and GPT2Config overrides, get (model in eval mode, its folder); the same name gives the same one."""
    made = {}

    def make(name: str = "gpt2", **config):
        if name not in made:
            import torch
            from transformers import GPT2Config, GPT2LMHeadModel

            torch.manual_seed(0)
            # initializer_range well above GPT-2's 0.02: logits spread enough that greedy choices are clear
            settings = dict(vocab_size=50257, n_positions=32, n_embd=32, n_layer=2, n_head=4, initializer_range=0.2)
            model = GPT2LMHeadModel(GPT2Config(**{**settings, **config})).eval()
            folder = tmp_path_factory.mktemp(name)
            model.save_pretrained(folder)
            made[name] = model, folder
        return made[name]

    return make


@pytest.fixture(scope="session")
def nanogpt_char_run(make_hf_gpt2, tmp_path_factory):
    import torch

    """A nanoGPT out_dir: ckpt.pt (weights of a 65-character GPT-2 with exact GELU) and its meta.pkl beside."""
    hf, _ = make_hf_gpt2("char-gpt", vocab_size=len(NANOGPT_CHARS), activation_function="gelu")
    run = tmp_path_factory.mktemp("out-shakespeare-char")
    conv1d = ("c_attn.weight", "c_proj.weight", "c_fc.weight")
    state = {
        f"_orig_mod.{k}": (v.t().contiguous() if k.endswith(conv1d) else v)
        for k, v in hf.state_dict().items()
        if not k.endswith(".attn.bias")
    }
    c = hf.config
    args = dict(
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        block_size=c.n_positions,
        bias=True,
        vocab_size=len(NANOGPT_CHARS),
        dropout=0.0,
    )
    torch.save(
        {"model": state, "model_args": args, "iter_num": 10, "config": {"dataset": "shakespeare_char"}}, run / "ckpt.pt"
    )
    meta = {"vocab_size": len(NANOGPT_CHARS), "itos": dict(enumerate(NANOGPT_CHARS))}
    (run / "meta.pkl").write_bytes(pickle.dumps(meta))
    return hf, run
