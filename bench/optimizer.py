"""AdamW against Muon: the same model, batches, steps and learning rate; val loss and speed.

    SCRATCHGPT_DATA=../shared/data OMP_NUM_THREADS=1 python bench/optimizer.py [--steps 400] [--n-embd 128] [--lr 2e-3]

Both runs go through `scratchgpt train` (in this process, one after the other) with one seed, so
they see exactly the same batches; only `--optimizer` differs. Muon's updates are scaled to
AdamW's RMS, so one learning rate is meant to serve both. Figures: tokens/s while training and
`scratchgpt eval` (the whole val split, nats/char) of each run's best checkpoint. The last lines are
`muon_val_gain=<adamw - muon, nats/char>` and `muon_speed_ratio=<muon tok/s / adamw tok/s>`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from scratchgpt.cli.train import parse_args, run
from scratchgpt.model.evaluate import evaluate_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--block-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    flags = [
        *"--corpus tinyshakespeare --tokenizer char --n-layer".split(),
        str(args.n_layer),
        "--n-head",
        "4",
        "--n-embd",
        str(args.n_embd),
        "--block-size",
        str(args.block_size),
        "--batch-size",
        str(args.batch_size),
        "--max-iters",
        str(args.steps),
        "--lr",
        str(args.lr),
        "--warmup-iters",
        str(max(1, args.steps // 10)),
        "--eval-interval",
        str(args.steps),
        "--eval-iters",
        "10",
        "--log-interval",
        str(args.steps),
        "--device",
        "cpu",
    ]
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("adamw", "muon"):
            out = Path(tmp) / f"{kind}.safetensors"
            summary = run(parse_args([*flags, "--optimizer", kind, "--out", str(out)]))
            val = evaluate_checkpoint(str(out))["val_nats_per_char"]
            results[kind] = (summary["tokens_per_second"], val)
    print(
        f"model: {args.n_layer}x{args.n_embd}, block {args.block_size}, batch {args.batch_size}, "
        f"{args.steps} steps, lr {args.lr:g}"
    )
    for kind, (tps, val) in results.items():
        print(f"{kind + ':':7s} {tps:8,.0f} tok/s   val {val:.4f} nats/char")
    print(f"muon_val_gain={results['adamw'][1] - results['muon'][1]:.4f}")
    print(f"muon_speed_ratio={results['muon'][0] / results['adamw'][0]:.2f}")


if __name__ == "__main__":
    main()
