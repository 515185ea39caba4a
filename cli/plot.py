"""`scratchgpt plot RUN`: a run's train and val loss against steps and tokens, as a PNG; of a ladder's folder,
every rung's validation curve on one chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..core.errors import ScratchGPTError
from .common import Parser


def read_metrics(path: Path) -> tuple[list[dict], list[dict]]:
    """The per-step lines and the evaluation lines of a metrics JSONL file."""
    steps, evals = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            raise ScratchGPTError(f"{path}:{n} is not JSON; is this a metrics file?") from None
        (evals if "val_loss" in entry else steps).append(entry)
    return steps, evals


def metrics_path(run: str | Path) -> Path:
    """The metrics file of run: a run's --out path, its .metrics.jsonl, or a folder holding one run."""
    run = Path(run)
    if run.is_dir():
        return run_in_folder(run)
    if run.suffix == ".jsonl":
        return run
    stem = run.with_suffix("") if run.suffix == ".safetensors" else run
    return Path(f"{stem}.metrics.jsonl")


def _pyplot():
    """matplotlib's pyplot drawing into files (no window), or one line saying how to install it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ScratchGPTError("plotting needs matplotlib: pip install 'scratchgpt[plot]'") from None
    return plt


def plot_attention(attention, tokens: list[str], png: str | Path) -> Path:
    """A layers x heads grid of heatmaps: attention (n_layer, nh, T, T), row t = where position t looks,
    with the tokens as tick labels when there are few enough to read. Returns the PNG's path."""
    plt = _pyplot()
    n_layer, n_head, T, _ = attention.shape
    fig, axes = plt.subplots(n_layer, n_head, figsize=(1.8 * n_head + 1, 1.8 * n_layer + 0.6), dpi=120, squeeze=False)
    for layer in range(n_layer):
        for head in range(n_head):
            ax = axes[layer][head]
            ax.imshow(attention[layer, head].cpu().numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if T <= 24 and layer == n_layer - 1:
                ax.set_xticks(range(T), tokens, rotation=90, fontsize=5)
            if T <= 24 and head == 0:
                ax.set_yticks(range(T), tokens, fontsize=5)
            if layer == 0:
                ax.set_title(f"head {head}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=8)
    fig.suptitle("attention: each row is a position, each column a token it attends to", fontsize=9)
    fig.tight_layout()
    out = Path(png)
    fig.savefig(out)
    plt.close(fig)
    return out


def run_in_folder(folder: Path) -> Path:
    """The metrics file of the one run in folder; a folder of several runs names them."""
    found = sorted(folder.glob("*.metrics.jsonl"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise ScratchGPTError(
            f"no run in {folder}: it holds no .metrics.jsonl; give a run's --out path or its .metrics.jsonl"
        )
    names = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
    raise ScratchGPTError(f"{folder} holds {len(found)} runs ({names}); give one, as in scratchgpt plot {found[0]}")


def plot_run(run: str | Path, *, png: str | Path | None = None) -> Path:
    """Draw loss against steps (bottom axis) and tokens (top axis); returns the PNG's path."""
    if (Path(run) / LADDER_FILE).is_file():
        return plot_ladder(Path(run), png=png)
    path = metrics_path(run)
    if not path.is_file():
        raise ScratchGPTError(f"no metrics at {path}; give a run's --out path or its .metrics.jsonl")
    steps, evals = read_metrics(path)
    if not steps and not evals:
        raise ScratchGPTError(f"{path} holds no losses yet; train for at least --log-interval steps")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    if steps:
        ax.plot([e["step"] for e in steps], [e["loss"] for e in steps], lw=0.8, alpha=0.6, label="train (batch)")
    if evals:
        ax.plot([e["step"] for e in evals], [e["train_loss"] for e in evals], "o-", ms=3, label="train (eval)")
        ax.plot([e["step"] for e in evals], [e["val_loss"] for e in evals], "o-", ms=3, label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend()
    points = steps + evals
    if points and points[-1]["step"]:
        per_step = max(e["tokens"] for e in points) / max(e["step"] for e in points)
        top = ax.secondary_xaxis("top", functions=(lambda s: s * per_step, lambda t: t / per_step))
        top.set_xlabel("tokens")
    ax.set_title(path.name.removesuffix(".metrics.jsonl"))
    out = Path(png) if png else path.with_name(path.name.removesuffix(".metrics.jsonl") + ".loss.png")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


LADDER_FILE = "ladder.json"  # training/ladder.py's record of a ladder's rungs


def plot_ladder(folder: Path, *, png: str | Path | None = None) -> Path:
    """Each finished rung's validation loss against the tokens it has seen, one line a rung; returns the PNG's path."""
    try:
        record = json.loads((folder / LADDER_FILE).read_text(encoding="utf-8"))
        rungs = [(r["index"], r["name"]) for r in record["results"]]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise ScratchGPTError(f"{folder / LADDER_FILE} is damaged ({e}); run the ladder again in a new --out") from None
    if not rungs:
        raise ScratchGPTError(f"the ladder in {folder} has no finished rung yet; --resume it first")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=120)
    for n, (index, name) in enumerate(rungs):
        _, evals = read_metrics(folder / f"{index}-{name}.metrics.jsonl")
        tokens, val = [e["tokens"] for e in evals], [e["val_loss"] for e in evals]
        ax.plot(tokens, val, "o-", ms=3, color=plt.cm.tab20(n % 20), label=f"{index}-{name}")  # 20 tell apart
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("val loss (nats per token)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncols=2)
    ax.set_title(f"the ladder in {folder.name}: each rung's validation loss")
    out = Path(png) if png else folder / "ladder.png"
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_parser() -> Parser:
    p = Parser(prog="scratchgpt plot", description="Draw a run's train and val loss into a PNG.")
    p.add_argument(
        "run", help="a run's checkpoint (--out), its .metrics.jsonl, a folder holding one run, or a ladder's folder"
    )
    p.add_argument("--png", help="output file (default: next to the metrics file)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_plot(argv: Sequence[str]) -> int:
    args = plot_parser().parse_args(argv)
    print(plot_run(args.run, png=args.png))
    return 0
