"""`scratchgpt serve` as a user runs it: the missing extra, bad input, and a clean end on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from scratchgpt.cli.serve import INSTALL_HINT, cmd_serve, load_models, serve_parser
from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.checkpoint import save_checkpoint
from scratchgpt.serve.batch import Finished, Request
from scratchgpt.serve.common import Models

from .conftest import tiny_model


def test_without_the_serve_extra_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # what importing a package that is not installed does
    with pytest.raises(ScratchGPTError, match=r"pip install 'scratchgpt\[serve\]'"):
        cmd_serve([])
    assert "scratchgpt[serve]" in INSTALL_HINT


def test_a_model_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(ScratchGPTError, match="does not exist"):
        cmd_serve([str(tmp_path / "nope.safetensors")])


def test_a_port_in_use_is_one_line_before_anything_says_it_serves(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ScratchGPTError, match=f"port {port} on 127.0.0.1 is in use.*--port"):
            cmd_serve(["--port", str(port)])
    assert "scratchgpt serve: http" not in capsys.readouterr().err


def test_the_largest_parallel_queue_and_threads_load_and_decode(tmp_path, capsys):
    model, tokenizer = tiny_model()
    model.set_block_size(64)  # 256 rows of a 64-token cache
    path = save_checkpoint(tmp_path / "tiny.safetensors", model, tokenizer)
    parser = serve_parser()
    tops = {
        a.option_strings[-1]: str(int(a.type.high))
        for a in parser._actions
        if a.option_strings and a.option_strings[-1] in ("--parallel", "--max-queue", "--threads")
    }
    models = Models()
    load_models(models, parser.parse_args([str(path), *(x for flag, top in tops.items() for x in (flag, top))]))
    try:
        assert models.ready and models.failure is None
        assert f'serving {path} as "model": "tiny"' in capsys.readouterr().err  # the name clients ask for
        engine = models.by_name["tiny"].engine
        assert (engine.parallel, engine.max_queue) == (256, 100_000)
        events = []
        engine.submit(Request(prompt=tokenizer.encode("ab"), max_tokens=3, emit=events.append, temperature=0))
        deadline = time.monotonic() + 30
        while not (events and isinstance(events[-1], Finished)):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert events[-1].completion_tokens == 3
    finally:
        models.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_sigterm_ends_a_stream_in_flight_with_an_error_event_and_exits(tmp_path):
    model, tokenizer = tiny_model()
    path = save_checkpoint(tmp_path / "tiny.safetensors", model, tokenizer)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scratchgpt", "serve", str(path), "--port", str(port), "--threads", "1"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not come up"
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        body = {"model": "tiny", "prompt": "a", "max_tokens": 2000, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
            frames = r.iter_lines()
            assert next(frames).startswith("data: {")
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            last = [line for line in frames if line.startswith("data: ")][-1]
        assert "shutting down" in json.loads(last[len("data: ") :])["error"]["message"]
        # uvicorn re-raises the signal once it has shut down, so the exit status says what ended it
        assert proc.wait(timeout=15) in (0, -signal.SIGTERM) and time.monotonic() - sent < 10
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
