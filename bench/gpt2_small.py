"""A 124M-parameter GPT-2 small in the REPL on this machine: load, memory, decode speed, /train steps.

    python bench/gpt2_small.py [--new-tokens 32] [--train-steps 3] [--no-compile]

The real GPT-2 weights cannot be fetched here, so the model is GPT-2 small's config (12 layers,
12 heads, 768 wide, 1024 context, GPT-2's 50,257-token vocabulary, its layout) with random weights:
speed and memory do not depend on the values. Measured, one after another in one process:
  load      seconds to load it as a ScratchGPT fp32 checkpoint (what `scratchgpt import` writes), and
            to import it from a Hugging Face GPT-2 folder in memory (what `scratchgpt-repl SRC` does)
  memory    resident set size after loading, and its peak over the whole run
  decode    tokens/s of the engine after a 64-token prompt: eager, compiled (`--compile`; its first
            call's compile time apart), int8 (`--quantize int8`), int8 compiled
  /train    the batch /train picks (training/budget.py), the seconds it took to pick it, its
            estimated step time, and the measured seconds of each of --train-steps steps on Tiny
            Shakespeare (the first also allocates AdamW's moments)
The last line is one `key=value` list of the headline figures.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch

from scratchgpt.model.checkpoint import load_checkpoint, save_checkpoint
from scratchgpt.model.engine import Engine
from scratchgpt.model.gpt import GPT2_LAYOUT, GPTConfig, build_model
from scratchgpt.model.interop import export_hf, open_model
from scratchgpt.repl.session import Session, Settings
from scratchgpt.tokenizers import TiktokenTokenizer
from scratchgpt.training import finetune as train_run

GPT2_SMALL = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768, **GPT2_LAYOUT)


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def decode_tokens_per_second(model, prompt: list[int], n: int, **engine_options) -> tuple[float, float]:
    """(tokens/s of n decoded tokens after the prompt, seconds of a first call: compile and warm-up)."""
    engine = Engine(model, **engine_options)
    t0 = time.perf_counter()
    list(engine.generate(prompt, max_new_tokens=2, temperature=0))
    first = time.perf_counter() - t0
    engine.reset()
    engine.prefill(prompt)
    t0 = time.perf_counter()
    made = list(engine.generate(prompt, max_new_tokens=n, temperature=0))
    return len(made) / (time.perf_counter() - t0), first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--new-tokens", type=int, default=32, help="tokens decoded per engine (default 32)")
    ap.add_argument("--train-steps", type=int, default=3, help="/train steps timed (default 3)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compiled engines (minutes to build here)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    headline = {}

    torch.manual_seed(0)
    model = build_model(GPT2_SMALL).eval()
    print(f"model: GPT-2 small config, {model.num_params():,} parameters (random weights)")
    with tempfile.TemporaryDirectory() as tmp:
        path = save_checkpoint(Path(tmp) / "gpt2-small.safetensors", model, TiktokenTokenizer())
        export_hf(load_checkpoint(path), Path(tmp) / "hf")
        del model
        base = rss_mb()
        t0 = time.perf_counter()
        ckpt = load_checkpoint(path)
        headline["load_s"] = time.perf_counter() - t0
        print(
            f"load: {headline['load_s']:.2f} s from a {path.stat().st_size / 1e6:,.0f} MB fp32 checkpoint, "
            f"RSS +{rss_mb() - base:,.0f} MB ({rss_mb():,.0f} MB in all)"
        )
        t0 = time.perf_counter()
        imported, _ = open_model(Path(tmp) / "hf")
        headline["hf_import_s"] = time.perf_counter() - t0
        print(f"import: {headline['hf_import_s']:.2f} s from a Hugging Face GPT-2 folder, in memory")
        del imported
    model = ckpt.model.eval()
    headline["rss_mb"] = rss_mb()

    prompt = ckpt.tokenizer.encode("First Citizen:\nBefore we proceed any further, hear me speak. " * 4)[:64]
    runs = [("eager", {}), ("int8", {"quantize": "int8"})]
    if not args.no_compile:
        runs += [("compiled", {"compile": True}), ("int8 compiled", {"compile": True, "quantize": "int8"})]
    for name, options in runs:
        tps, first = decode_tokens_per_second(model, prompt, args.new_tokens, **options)
        headline[f"decode_{name.replace(' ', '_')}_tok_s"] = tps
        print(f"decode {name}: {tps:.1f} tokens/s over {args.new_tokens} tokens (first call {first:.1f} s)")

    session = Session(ckpt, settings=Settings(seed=1))
    plans: list = []
    plan_train_step = train_run.plan_train_step

    def recorded_plan(*args, **kwargs):  # the plan /train makes, and how long making it took
        t0 = time.perf_counter()
        plans.append(plan_train_step(*args, **kwargs))
        headline["train_plan_s"] = time.perf_counter() - t0
        return plans[-1]

    train_run.plan_train_step = recorded_plan
    steps: list = []
    notes: list[str] = []
    report = session.train(
        args.train_steps, "tinyshakespeare", on_step=steps.append, on_note=notes.append, eval_iters=1
    )
    for note in notes[:1]:  # what /train prints before its first step
        print(f"/train said ({headline['train_plan_s']:.1f} s to plan): {note}")
    seconds = [info.seconds for info in steps]
    headline["train_step_s"] = statistics.median(seconds)
    headline["train_step_estimate_s"] = plans[0].seconds
    print(
        f"/train: {report.steps} steps of {steps[0].tokens} tokens, "
        f"step seconds {', '.join(f'{s:.2f}' for s in seconds)} (estimated {plans[0].seconds:.2f})"
    )
    headline["peak_rss_mb"] = peak_rss_mb()
    print(
        f"memory: RSS {headline['rss_mb']:,.0f} MB after loading, peak {headline['peak_rss_mb']:,.0f} MB "
        "(the peak includes /train's optimizer state and the copy it keeps for the before/after losses)"
    )
    print(" ".join(f"{k}={v:.2f}" for k, v in headline.items()))


if __name__ == "__main__":
    main()
