"""A real uvicorn server on a free 127.0.0.1 port, serving tiny models: "tiny" (a char vocabulary, random
weights) and "emoji" (GPT-2's BPE, weights set so greedy decoding repeats 😀, whose bytes span two tokens)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest
import torch

uvicorn = pytest.importorskip("uvicorn")  # the serve extra; CI's test extra installs it

from scratchgpt.model.gpt import GPTConfig, build_model  # noqa: E402
from scratchgpt.serve.app import build_app  # noqa: E402
from scratchgpt.serve.batch import BatchEngine  # noqa: E402
from scratchgpt.serve.common import Models, ServedModel  # noqa: E402
from scratchgpt.serve.security import Limits  # noqa: E402
from scratchgpt.serve.server import server_config  # noqa: E402
from scratchgpt.tokenizers import fit_tokenizer  # noqa: E402
from scratchgpt.tokenizers.char import CharTokenizer  # noqa: E402

API_KEY = "test-key"
CHARS = "\n !',.:?abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
TINY_BLOCK = 2048  # long enough that a reply outlasts a client that leaves after one chunk
EMOJI = "😀"


def tiny_model(**config_changes) -> tuple[torch.nn.Module, CharTokenizer]:
    torch.manual_seed(0)
    tokenizer = CharTokenizer(CHARS)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size, block_size=TINY_BLOCK, n_layer=2, n_head=2, n_embd=32, **config_changes
    )
    return build_model(config).eval(), tokenizer


def emoji_model():
    """A GPT-2-vocabulary model whose greedy reply to 😀 is 😀😀😀...: the blocks' outputs are zeroed, so the
    logits depend on the last token alone, and the emoji's two tokens each predict the other."""
    tokenizer = fit_tokenizer("tiktoken")
    first, second = tokenizer.encode(EMOJI)
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=32)
    model = build_model(config).eval()
    with torch.no_grad():
        for block in model.blocks:
            block.attn.c_proj.weight.zero_()
            block.mlp.c_proj.weight.zero_()
        v = torch.tensor([1.0, -1.0] * 16)  # zero mean, unit spread: the final LayerNorm leaves it as it is
        model.wte.weight[first], model.wte.weight[second] = v, -v
        model.lm_head.weight.zero_()
        model.lm_head.weight[second], model.lm_head.weight[first] = 10 * v, -10 * v
    return model, tokenizer


@contextlib.contextmanager
def running(app, limits: Limits | None = None):
    """Serve app on a free loopback port, as `scratchgpt serve` does (server_config); yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(app, limits or Limits(), log_level="warning", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def serve(*named: tuple[str, torch.nn.Module, object], parallel: int = 4, max_queue: int = 4) -> Models:
    models = Models()
    for name, model, tokenizer in named:
        engine = BatchEngine(model, tokenizer, parallel=parallel, max_queue=max_queue)
        engine.start()
        models.add(ServedModel(name, engine))
    models.ready = True
    return models


@pytest.fixture(scope="package")
def served():
    """(base URL, Models) of the shared server, which asks for API_KEY."""
    models = serve(("tiny", *tiny_model()), ("emoji", *emoji_model()))
    with running(build_app(models, api_key=API_KEY)) as url:
        yield url, models
    models.stop()


@pytest.fixture
def base_url(served) -> str:
    return served[0]


def wait_idle(engine: BatchEngine, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while engine.busy:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True
