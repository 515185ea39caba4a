"""What looking inside costs: decoding with /probs off and on against today's path, and score against eval.

    python bench/inspect_speed.py [--tokens 60] [--rounds 15] [--threads 1] [--compile] [--val-tokens 20000]

Decoding, on the shipped char model, three paths interleaved round by round (each round runs them in a
rotated order, the same seed, so the same tokens):
  today  Completion without logprobs: the code path sample and the REPL took before issue 30
  off    Completion(logprobs=20), nothing read: what every REPL reply does now with /probs off
         (each token's logits kept by reference, so /why can explain it later)
  on     as off, and each piece shaded as /probs does: the records computed and a rich Text built
Prints the median tokens/s of each, and the medians of each round's off/today and on/today speed ratios
(targets: off within noise of 1, on >= 0.8).

Scoring, the first --val-tokens tokens of the validation split: eval's loop (windows of the context,
not overlapping, as `scratchgpt eval`) against score_ids (windows two thirds of a context apart, each
token once with at least a third of a context before it) and score_text (the same plus building score --json's object).
Prints seconds and score/eval (target <= 2).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from scratchgpt.cli.inspect_view import ShadedStream
from scratchgpt.data import load_tokens, resolve_corpus, split_tokens, val_windows
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.model.engine import Completion, Engine
from scratchgpt.model.evaluate import evaluate_windows
from scratchgpt.model.inspection import default_stride, score_ids, score_text
from scratchgpt.model.logprobs import MAX_TOP_LOGPROBS
from scratchgpt.model.sampling_settings import SamplingSettings


def decode(engine: Engine, tokenizer, context: list[int], n: int, path: str) -> float:
    """Seconds to generate n tokens after context by one path (the prefill not counted)."""
    engine.reset()
    engine.prefill(context)
    settings = SamplingSettings(temperature=0.8, max_new_tokens=n, seed=1)
    logprobs = None if path == "today" else MAX_TOP_LOGPROBS
    completion = Completion(
        engine, tokenizer, context, settings, generator=torch.Generator().manual_seed(1), logprobs=logprobs
    )
    shade = ShadedStream(completion).shade if path == "on" else None
    t0 = time.perf_counter()
    for piece in completion:
        if shade is not None:
            shade(piece)
    seconds = time.perf_counter() - t0
    assert len(completion.ids) == n
    return seconds


def bench_decode(args, ckpt) -> None:
    engine = Engine(ckpt.model, compile=args.compile)
    context = ckpt.tokenizer.encode("ROMEO:\n")
    paths = ["today", "off", "on"]
    for path in paths:  # warm up (and compile)
        decode(engine, ckpt.tokenizer, context, 20, path)
    times: dict[str, list[float]] = {p: [] for p in paths}
    for r in range(args.rounds):
        for path in paths[r % 3 :] + paths[: r % 3]:
            times[path].append(decode(engine, ckpt.tokenizer, context, args.tokens, path))
    mode = "compiled" if args.compile else "eager"
    for p in paths:
        rates = sorted(args.tokens / t for t in times[p])
        print(
            f"decode {mode} {p:>5}: {statistics.median(rates):7.1f} tokens/s median of {args.rounds} "
            f"(range {rates[0]:.0f}-{rates[-1]:.0f})"
        )
    # each round's paths ran back to back: the ratio within a round cancels the machine's slower drift
    paired = {p: statistics.median(t / o for t, o in zip(times["today"], times[p], strict=True)) for p in paths}
    print(f"probs_off_ratio={paired['off']:.3f} probs_on_ratio={paired['on']:.3f} (medians of per-round ratios)")


def bench_score(args, ckpt) -> None:
    corpus = resolve_corpus(ckpt.corpus["source"] if ckpt.corpus.get("source") else ckpt.corpus["name"])
    _, val = split_tokens(load_tokens(corpus, ckpt.tokenizer))
    val = np.asarray(val[: args.val_tokens])
    text = ckpt.tokenizer.decode(val.tolist())
    model, block = ckpt.model, ckpt.config.block_size
    t0 = time.perf_counter()
    total, count = evaluate_windows(model, val_windows(val, block, 16))
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    records = score_ids(model, val)
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = score_text(model, ckpt.tokenizer, text)
    t_text = time.perf_counter() - t0
    nats = -sum(r.logprob for r in records)
    print(f"eval  windows {block} apart:      {t_eval:6.2f} s, {total / count:.4f} nats/token over {count:,} tokens")
    print(
        f"score windows {default_stride(block)} apart:      {t_score:6.2f} s, {nats / len(records):.4f} nats/token "
        f"(more context per token)"
    )
    print(f"score_text (+ the JSON object): {t_text:6.2f} s, {result['nats_per_char']:.4f} nats/char")
    print(f"score_over_eval={t_score / t_eval:.2f} score_text_over_eval={t_text / t_eval:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=60, help="tokens per decode run")
    ap.add_argument("--rounds", type=int, default=15, help="short runs, many rounds: pairs closer in time")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    ap.add_argument("--compile", action="store_true", help="time the compiled decode step (its pick in the graph)")
    ap.add_argument("--val-tokens", type=int, default=20_000)
    ap.add_argument("--skip", choices=("decode", "score"), help="leave one half out")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(shipped_checkpoint("char"))
    ckpt.model.eval()
    with torch.inference_mode():
        if args.skip != "decode":
            bench_decode(args, ckpt)
        if args.skip != "score":
            bench_score(args, ckpt)


if __name__ == "__main__":
    main()
