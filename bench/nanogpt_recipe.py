"""nanoGPT's CPU recipe, timed two ways in one run: `scratchgpt train` against a nanoGPT-style trainer.

    SCRATCHGPT_DATA=../shared/data python bench/nanogpt_recipe.py [--rounds 1]

The recipe (nanoGPT README, "I only have a macbook"): char-level Tiny Shakespeare, 4 layers,
4 heads, 128 wide, block 64, batch 12, 2000 iterations, dropout 0, eval every 250 steps over 20
batches per split. The baseline trainer does what nanoGPT's train.py does on a CPU: nanoGPT's
architecture (learned positions, GELU, tied LM head, LayerNorm), fp32 eager, AdamW
(betas 0.9/0.99, weight decay 0.1), warmup 100 then cosine to 1e-4, gradient clipping at 1.0,
random windows of a uint16 memmap, an eval at step 0 and every 250 steps, a checkpoint whenever
val improves. Both run as fresh processes, alternating, and their wall time includes start-up.
Figures: wall seconds and val loss of each; `scratchgpt eval` over the whole val split for ours.
The last line is `recipe_time_ratio=<scratchgpt / baseline>` (below 1 means faster).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RECIPE = ["--config", "nanogpt-cpu", "--overwrite"]  # recipes/nanogpt-cpu.toml, each round over the last


def baseline_worker(out_dir: Path) -> None:
    """nanoGPT's training loop, rewritten over this package's model with nanoGPT's choices."""
    import numpy as np
    import torch

    from scratchgpt.data import load_tokens, resolve_corpus
    from scratchgpt.model.gpt import GPTConfig, build_model
    from scratchgpt.tokenizers import fit_tokenizer

    torch.manual_seed(1337)
    corpus = resolve_corpus("tinyshakespeare")
    text = corpus.path.read_text(encoding="utf-8")
    tokenizer = fit_tokenizer("char", [text])
    data = np.asarray(load_tokens(corpus, tokenizer))
    n = int(0.9 * len(data))
    splits = {"train": data[:n], "val": data[n:]}
    block, batch = 64, 12
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=block,
        n_layer=4,
        n_head=4,
        n_embd=128,
        rope=False,
        qk_norm=False,
        activation="gelu",
        tie_embeddings=True,
    )
    model = build_model(config)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3, betas=(0.9, 0.99)
    )

    def get_batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - block, (batch,))
        x = torch.stack([torch.from_numpy(d[i : i + block].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(d[i + 1 : i + 1 + block].astype(np.int64)) for i in ix])
        return x, y

    def lr_at(it):
        if it < 100:
            return 1e-3 * (it + 1) / 101
        ratio = (it - 100) / (2000 - 100)
        return 1e-4 + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (1e-3 - 1e-4)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for split in splits:
            out[split] = torch.stack([model(*get_batch(split))[1] for _ in range(20)]).mean().item()
        model.train()
        return out

    best = float("inf")
    for it in range(2001):
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it)
        if it % 250 == 0:
            losses = estimate_loss()
            if losses["val"] < best:
                best = losses["val"]
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, out_dir / "ckpt.pt")
        if it == 2000:
            break
        x, y = get_batch("train")
        _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss.item()
    print(json.dumps({"val": best}))


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--baseline-worker", metavar="DIR", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_worker:
        baseline_worker(Path(args.baseline_worker))
        return
    if "SCRATCHGPT_DATA" not in os.environ:
        sys.exit("set SCRATCHGPT_DATA to the folder holding tinyshakespeare.txt")
    ours_t, base_t = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "recipe.safetensors"
        for _ in range(args.rounds):
            seconds, _ = timed(["scratchgpt", "train", *RECIPE, "--out", str(out)])
            ours_t.append(seconds)
            seconds, stdout = timed([sys.executable, __file__, "--baseline-worker", tmp])
            base_t.append(seconds)
            base_val = json.loads(stdout.strip().splitlines()[-1])["val"]
        _, stdout = timed(["scratchgpt", "eval", "--checkpoint", str(out), "--json"])
        ours = json.loads(stdout)
    ours_s, base_s = sorted(ours_t)[len(ours_t) // 2], sorted(base_t)[len(base_t) // 2]
    print(
        f"scratchgpt train:         {ours_s:6.1f} s wall   val {ours['val_nats_per_char']:.4f} nats/char "
        "(scratchgpt eval, whole val split)"
    )
    print(f"nanoGPT-style fp32 loop:  {base_s:6.1f} s wall   val {base_val:.4f} (estimate, 20 batches)")
    print(f"recipe_time_ratio={ours_s / base_s:.2f}")


if __name__ == "__main__":
    main()
