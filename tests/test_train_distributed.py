"""torchrun-style training with 2 CPU processes (gloo), checked against one process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch

from scratchgpt.cli.train import parse_args, run
from scratchgpt.model.checkpoint import load_checkpoint
from scratchgpt.training.run_files import RunPaths

FLAGS = (
    "--n-layer 2 --n-head 2 --n-embd 32 --block-size 32 --batch-size 8 --grad-accum 2 --max-iters 12 "
    "--eval-interval 6 --eval-iters 2 --dropout 0 --device cpu --amp fp32"
).split()

WORKER = """
import hashlib, json, sys, torch
from scratchgpt.cli.train import parse_args, run
summary = run(parse_args(sys.argv[1:]))
digest = hashlib.sha256()
for name, p in sorted(summary.model.state_dict().items()):
    digest.update(p.detach().cpu().contiguous().numpy().tobytes())
print("RESULT " + json.dumps({"digest": digest.hexdigest(), "val": summary.val}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(world: int, out, extra=()) -> list[dict]:
    port = free_port()
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(world),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
            "OMP_NUM_THREADS": "1",
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", WORKER, *FLAGS, "--out", str(out), *extra],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for proc in procs:
        out_text, err_text = proc.communicate(timeout=240)
        assert proc.returncode == 0, err_text[-2000:]
        line = next(line for line in out_text.splitlines() if line.startswith("RESULT "))
        results.append(json.loads(line.removeprefix("RESULT ")))
    return results


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    """Equal up to reduction order. Adam turns float noise in rarely seen embedding rows into
    lr-sized steps, so 5e-4 (a real error, such as other batches, moves weights ~1e-3 a step)."""
    other = b.state_dict()
    for name, p in a.state_dict().items():
        torch.testing.assert_close(p, other[name], atol=5e-4, rtol=0, msg=name)


@pytest.mark.slow
def test_two_gloo_ranks_end_identical_and_match_one_process_with_the_same_global_batch(tmp_path):
    ranks = launch(2, tmp_path / "ddp.safetensors")
    assert ranks[0]["digest"] == ranks[1]["digest"]

    single = run(parse_args([*FLAGS, "--out", str(tmp_path / "one.safetensors")]))
    assert_same_weights(load_checkpoint(tmp_path / "ddp.safetensors").model, single.model)
    assert ranks[0]["val"] == pytest.approx(single.val, abs=1e-4)


@pytest.mark.slow
def test_a_two_process_run_resumes_exactly_in_one_process(tmp_path):
    out = tmp_path / "run.safetensors"
    launch(2, out, ["--max-iters", "6", "--lr-decay-iters", "12"])  # stops halfway through the schedule
    resumed = run(parse_args([*FLAGS, "--out", str(out), "--resume"]))
    straight = run(parse_args([*FLAGS, "--out", str(tmp_path / "straight.safetensors")]))
    assert resumed.train_losses == pytest.approx(straight.train_losses[6:], abs=1e-4)
    assert resumed.val == pytest.approx(straight.val, abs=1e-4)
    assert_same_weights(resumed.model, straight.model)


@pytest.mark.slow
def test_two_ranks_with_a_time_budget_fit_and_end_on_the_same_step(tmp_path):
    out = tmp_path / "run.safetensors"  # ranks that disagreed on the end would hang in an all-reduce
    ranks = launch(2, out, ["--max-minutes", "0.15", "--max-iters", "1000000", "--log-interval", "4"])
    assert ranks[0]["digest"] == ranks[1]["digest"]
    last = load_checkpoint(RunPaths.from_out(out).last).provenance  # the end's save (the best may be earlier)
    assert 3 < last["max_iters"] < 1_000_000 and last["step"] == last["max_iters"] - 1


def torchrun(tmp_path, *argv: str) -> subprocess.Popen:
    """`torchrun --standalone --nproc_per_node=2 -m scratchgpt.train ARGV`, one thread per process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        *"-m torch.distributed.run --standalone --nproc_per_node=2 -m scratchgpt.train".split(),
        *argv,
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


NO_ACCUM = [f for i, f in enumerate(FLAGS) if "--grad-accum" not in FLAGS[max(0, i - 1) : i + 1]]


@pytest.mark.slow
def test_torchrun_without_grad_accum_takes_one_micro_batch_per_process_and_says_so(tmp_path):
    out = tmp_path / "run.safetensors"
    proc = torchrun(tmp_path, *NO_ACCUM, "--max-iters", "2", "--eval-interval", "2", "--out", str(out))
    stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == 0, stderr[-3000:]
    assert stdout.count("--grad-accum 2: one micro-batch per process") == 1, stdout  # said once, by rank 0
    assert "512 tokens a step (8 x 32 x 2)" in stdout and "2 processes" in stdout
    assert load_checkpoint(out).provenance["step"] == 1


@pytest.mark.slow
def test_under_torchrun_a_user_error_is_one_line_printed_once(tmp_path):
    proc = torchrun(tmp_path, *NO_ACCUM, "--grad-accum", "3", "--out", str(tmp_path / "run.safetensors"))
    _, stderr = proc.communicate(timeout=240)
    assert proc.returncode != 0
    ours = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert ours == [
        "error: --grad-accum 3 is not divisible by 2 processes; use a multiple of 2, or leave it out "
        "for one micro-batch per process"
    ], stderr[-3000:]


@pytest.mark.slow
def test_sigterm_to_the_torchrun_launcher_ends_in_one_complete_save_that_resumes(tmp_path):
    import signal
    import time

    from scratchgpt.model.checkpoint import load_train_state
    from scratchgpt.training.loop import make_optimizer
    from scratchgpt.training.run_files import RunPaths, resume_state_path

    paths = RunPaths.from_out(tmp_path / "run.safetensors")
    proc = torchrun(
        tmp_path,
        *FLAGS,
        "--max-iters",
        "100000",
        "--eval-interval",
        "100000",
        "--log-interval",
        "1",
        "--out",
        str(paths.best),
    )
    deadline = time.monotonic() + 180
    while not (paths.metrics.exists() and len(paths.metrics.read_text().splitlines()) >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert "interrupted after step" in stdout, stdout + stderr[-3000:]
    last = load_checkpoint(paths.last)
    _, state = load_train_state(resume_state_path(paths), make_optimizer(last.model, lr=1e-3))
    assert state["step"] == last.provenance["step"] >= 2 and not paths.pending_train_state.exists()
    resumed = run(parse_args(["--resume", "--max-iters", str(state["step"] + 3), "--out", str(paths.best)]))
    assert resumed.steps == state["step"] + 3 and len(resumed.train_losses) == 2
