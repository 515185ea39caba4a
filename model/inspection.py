"""Looking inside a model: how surprising each token of a text is, where attention goes, what each
layer would predict (the logit lens). Library code: it returns numbers and JSON-able dicts, and the
front ends (`scratchgpt score|inspect`, the REPL's /score, /attention, /lens, the server) show them.

Token texts are shown with their spaces made visible (`visible`), as TransformerLens prints them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..core.errors import ScratchGPTError
from ..core.text import counted
from ..data import IGNORE, val_windows
from ..tokenizers import Tokenizer
from .logprobs import MAX_TOP_LOGPROBS, TokenLogprob, token_logprobs

# what visible() puts for characters that print as nothing or move the cursor
_SHOWN = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}
SCORE_BATCH = 16  # windows per forward when scoring a long text


def token_text(tokenizer: Tokenizer, token_id: int) -> str:
    """The text of one token; bytes that are part of a character (a BPE token may hold one) as \\xNN."""
    return tokenizer.token_bytes(token_id).decode("utf-8", errors="backslashreplace")


def visible(text: str) -> str:
    """text with spaces, newlines and tabs drawn (`␣the` for " the"), other control characters escaped:
    put between pipes, `|␣the|`, a token's edges show."""
    return "".join(_SHOWN.get(c) or (c if c.isprintable() else repr(c)[1:-1]) for c in text)


def _check_top(top: int) -> None:
    if not 0 <= top <= MAX_TOP_LOGPROBS:
        raise ScratchGPTError(f"top must be from 0 to {MAX_TOP_LOGPROBS} alternatives, got {top}")


def default_stride(block_size: int) -> int:
    """Windows two thirds of a window apart: every token after the first window sees at least a third of a
    window of context (eval's non-overlapping windows give the first token of each none), at about 1.5x
    eval's compute (half a window apart would be 2x; bench/inspect_speed.py prints the ratio)."""
    return max(1, block_size - block_size // 3)


@torch.no_grad()
def score_ids(
    model: torch.nn.Module,
    ids: list[int] | np.ndarray,
    *,
    top: int = 0,
    stride: int | None = None,
    batch_size: int = SCORE_BATCH,
) -> list[TokenLogprob]:
    """The model's log-probability of each of ids[1:] given the ids before it, with top alternatives.

    A text within the window is one forward, each token seeing all before it. A longer one is scored
    by windows of block_size, stride apart (default_stride: two thirds of one), each token exactly once, by the
    first window in which it has at least block_size - stride tokens of context (`val_windows`, as
    `scratchgpt eval --stride` scores). With stride = block_size the sums are eval's exactly.
    """
    _check_top(top)
    block = model.config.block_size
    stride = default_stride(block) if stride is None else stride
    if not 1 <= stride <= block:
        raise ScratchGPTError(f"a stride of {stride} is outside 1..{block}, this model's context; pass at most {block}")
    device = next(model.parameters()).device
    model.eval()
    records: list[TokenLogprob] = []
    for x, y in val_windows(np.asarray(ids, dtype=np.int64), block, batch_size, stride):
        logits, _ = model(x.to(device))  # (B, T, V)
        keep = y.to(device) != IGNORE  # targets an earlier window scored are IGNORE
        records += token_logprobs(logits[keep], y.to(device)[keep], top)  # row order is ids order
    return records


def _alternatives(tokenizer: Tokenizer, top: tuple[tuple[int, float], ...]) -> list[dict]:
    return [{"token": token_text(tokenizer, i), "id": i, "logprob": lp} for i, lp in top]


def score_text(
    model: torch.nn.Module, tokenizer: Tokenizer, text: str, *, top: int = 0, stride: int | None = None
) -> dict:
    """How surprised the model is by text: `scratchgpt score --json`'s object.

    {"tokens": [{"token", "id", "logprob", "top_logprobs": [{"token", "id", "logprob"}]}], "nats_per_char",
    "bits_per_char", "perplexity"}: natural-log probabilities; the first token has "logprob": null and
    no alternatives (nothing came before it). Per char divides the summed nats by the characters the
    scored tokens spell (as `scratchgpt eval` does); perplexity is per token.
    """
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise ScratchGPTError(
            f"the text is {counted(len(ids), 'token')}; scoring needs at least two "
            "(the first is what the second is predicted from)"
        )
    records = score_ids(model, ids, top=top, stride=stride)
    nats = -sum(r.logprob for r in records)
    chars = max(1, len(tokenizer.decode(ids[1:])))
    first = {"token": token_text(tokenizer, ids[0]), "id": ids[0], "logprob": None, "top_logprobs": []}
    tokens = [first] + [
        {
            "token": token_text(tokenizer, r.id),
            "id": r.id,
            "logprob": r.logprob,
            "top_logprobs": _alternatives(tokenizer, r.top),
        }
        for r in records
    ]
    return {
        "tokens": tokens,
        "nats_per_char": nats / chars,
        "bits_per_char": nats / chars / math.log(2),
        "perplexity": math.exp(nats / len(records)),
    }


def disagreements(a: dict, b: dict, n: int = 5) -> list[dict]:
    """The n tokens two score_text results (the same text under two models) judge most differently:
    {"position", "token", "id", "logprob_a", "logprob_b"}, the largest |difference| first."""
    if [t["id"] for t in a["tokens"]] != [t["id"] for t in b["tokens"]]:
        raise ScratchGPTError("the two models split the text into different tokens; compare models of one vocabulary")
    rows = [
        {"position": i, "token": ta["token"], "id": ta["id"], "logprob_a": ta["logprob"], "logprob_b": tb["logprob"]}
        for i, (ta, tb) in enumerate(zip(a["tokens"], b["tokens"], strict=True))
        if ta["logprob"] is not None
    ]
    return sorted(rows, key=lambda r: -abs(r["logprob_a"] - r["logprob_b"]))[:n]


# --- attention and the logit lens ---------------------------------------------------------------


NO_LAYERS = (
    "the bigram baseline has no attention and no layers: it looks up the next token from the current "
    "one alone (score works on it)"
)


def layers_to_show(model: torch.nn.Module, layer: int | None) -> range:
    """Every layer, or the one asked for if the model has it; the bigram has none (one clear error)."""
    n = model.config.n_layer if model.config.arch == "gpt" else 0
    if n == 0:
        raise ScratchGPTError(NO_LAYERS)
    if layer is None:
        return range(n)
    if not 0 <= layer < n:
        raise ScratchGPTError(f"this model has {n} layers, numbered 0 to {n - 1}; pick one of those")
    return range(layer, layer + 1)


def inspectable_ids(model: torch.nn.Module, tokenizer: Tokenizer, text: str) -> list[int]:
    """The ids of a prompt to look inside with: a GPT's, non-empty, within its window; else one clear error."""
    layers_to_show(model, None)
    ids = tokenizer.encode(text)
    if not ids:
        raise ScratchGPTError("the prompt is empty; give some text to look inside with (-p TEXT)")
    block = model.config.block_size
    if len(ids) > block:
        raise ScratchGPTError(
            f"the prompt is {len(ids):,} tokens, longer than this model's window of {block}; "
            "shorten it (the model never sees more at once)"
        )
    return ids


@dataclass(frozen=True)
class LensRow:
    """What the residual stream after `layer` blocks (0 = the embeddings) predicts for the next token."""

    layer: int
    top: tuple[tuple[int, float], ...]  # (id, probability), likeliest first
    final_prob: float  # the probability it gives the model's own final choice


@torch.no_grad()
def look_inside(model: torch.nn.Module, ids: list[int], *, top: int = 5) -> tuple[torch.Tensor, list[LensRow]]:
    """One traced forward over ids: every attention weight, (n_layer, nh, T, T), and the logit lens at
    the last position, n_layer + 1 rows (ln_f and the head applied to each residual; the last row is
    the model's own output)."""
    device = next(model.parameters()).device
    model.eval()
    _, attention, residual = model.trace(torch.tensor([ids], device=device))
    last = torch.stack([r[0, -1] for r in residual])  # (n_layer + 1, C)
    probs = torch.softmax(model.lm_head(model.ln_f(last)).float(), dim=-1)  # (n_layer + 1, V)
    final = int(probs[-1].argmax())
    top_p, top_ids = probs.topk(min(top, probs.size(-1)), dim=-1)
    lens = [
        LensRow(layer, tuple(zip(i, p, strict=True)), float(probs[layer, final]))
        for layer, (i, p) in enumerate(zip(top_ids.tolist(), top_p.tolist(), strict=True))
    ]
    return torch.cat(attention), lens


def inspect_text(model: torch.nn.Module, tokenizer: Tokenizer, text: str, *, top: int = 5) -> dict:
    """`scratchgpt inspect --json`'s object: {"tokens": [{"token", "id"}], "attention": [layer][head][position]
    (the last position's weights over the context), "lens": [{"layer", "top": [{"token", "id", "prob"}]}]}
    with n_layer + 1 lens rows, row 0 the embeddings."""
    if not 1 <= top <= MAX_TOP_LOGPROBS:
        raise ScratchGPTError(f"top must be from 1 to {MAX_TOP_LOGPROBS} tokens, got {top}")
    ids = inspectable_ids(model, tokenizer, text)
    return inspection_json(tokenizer, ids, *look_inside(model, ids, top=top))


def inspection_json(tokenizer: Tokenizer, ids: list[int], attention: torch.Tensor, lens: list[LensRow]) -> dict:
    """look_inside's answer as inspect_text's object (for a front end that also draws the full maps)."""
    return {
        "tokens": [{"token": token_text(tokenizer, i), "id": i} for i in ids],
        "attention": attention[:, :, -1, :].tolist(),  # (n_layer, nh, T)
        "lens": [
            {"layer": row.layer, "top": [{"token": token_text(tokenizer, i), "id": i, "prob": p} for i, p in row.top]}
            for row in lens
        ],
    }
