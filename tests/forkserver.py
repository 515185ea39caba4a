"""A process that imports scratchgpt once, then forks a child per job, so a test can start many
short-lived `scratchgpt train` processes (to kill -9 them) without paying ~5 s of imports each.

Run as `python tests/forkserver.py` with OMP_NUM_THREADS=1 (forking is safe only while torch has
never started a thread pool). It reads one JSON request per line on stdin and answers one JSON
line on stdout:
    {"op": "start", "job": "train", "argv": [...], "log": PATH, ...}   -> {"pid": N}
    {"op": "start", "job": "save_loop", "path": P, "writer": W, "count": N, "log": PATH} -> {"pid": N}
    {"op": "poll", "pid": N}  -> {"status": null while it runs, else its exit code (-signal if killed)}
    {"op": "wait", "pid": N}  -> {"status": ...}
A job's stdout and stderr go to its log file. Options:
    slow_fsync    seconds each os.fsync sleeps first, as on a slow disk, so that a test polling the
                  directory can land a kill inside a checkpoint write
    memory_limit  (train) bytes of address space the child may add to what the imports took (RLIMIT_AS)
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback

import torch

from scratchgpt.cli import train
from scratchgpt.model.checkpoint import save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.tokenizers import fit_tokenizer
from scratchgpt.training.loop import make_optimizer


def _address_space() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def slow_down_fsync(delay: float) -> None:
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        time.sleep(delay)
        real_fsync(fd)

    os.fsync = slow_fsync


def train_job(request: dict) -> int:
    if extra := request.get("memory_limit"):
        limit = _address_space() + extra
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return train.cli(request["argv"])


def save_loop_job(request: dict) -> int:
    """Save `count` versions of one model to `path`: every weight of version i of writer w is w * 1000 + i."""
    tokenizer = fit_tokenizer("char", ["abcdefgh"])
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=64))
    writer = request["writer"]
    for i in range(request["count"]):
        with torch.no_grad():
            for p in model.parameters():
                p.fill_(writer * 1000 + i)
        save_checkpoint(request["path"], model, tokenizer, provenance={"writer": writer, "version": i})
    return 0


JOBS = {"train": train_job, "save_loop": save_loop_job}


def start(request: dict) -> int:
    sys.stdout.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 99
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        if delay := request.get("slow_fsync"):
            slow_down_fsync(delay)
        code = JOBS[request["job"]](request)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def status(pid: int, *, block: bool) -> int | None:
    done, code = os.waitpid(pid, 0 if block else os.WNOHANG)
    if not done:
        return None
    return os.waitstatus_to_exitcode(code)


def main() -> None:
    tokenizer = fit_tokenizer("char", ["ab"])
    make_optimizer(build_model(GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=1, n_head=1, n_embd=8)), lr=1e-3)
    print(json.dumps({"ready": os.getpid()}), flush=True)  # the optimizer's first use imports torch._dynamo
    for line in sys.stdin:
        request = json.loads(line)
        op = request["op"]
        if op == "start":
            answer = {"pid": start(request)}
        else:
            answer = {"status": status(request["pid"], block=op == "wait")}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
