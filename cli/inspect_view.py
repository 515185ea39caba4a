"""How the front ends show the inside of a model: text shaded by probability, /why's table of alternatives,
score's report, attention's most attended tokens and the logit lens, as rich Text or plain lines.

Shared by `scratchgpt sample|score|inspect` and the REPL's /probs, /why, /score, /attention, /lens. The
numbers come from model/logprobs.py and model/inspection.py; this module only lays them out. On a console
without colour (piped, NO_COLOR) rich prints the same text with no codes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from ..core.text import terminal_safe
from ..model.inspection import LensRow, token_text, visible

if TYPE_CHECKING:
    import torch
    from rich.text import Text

    from ..model.engine import Completion
    from ..model.sampling_settings import SamplingSettings
    from ..tokenizers import Tokenizer

# Probability bands, a log scale (0.9, 0.5, 0.1 and 0.01 read apart), coloured along viridis, whose
# lightness falls steadily from yellow to purple: readers with any common colour-vision deficiency,
# or none, see the order. (lower bound, background, text colour, legend label)
BANDS = (
    (0.9, "#fde725", "black", "≥.9"),
    (0.5, "#7ad151", "black", "≥.5"),
    (0.1, "#22a884", "black", "≥.1"),
    (0.01, "#2a788e", "white", "≥.01"),
    (0.0, "#440154", "white", "<.01"),
)
TOKEN_WIDTH = 12  # characters of a token shown in a table before it is cut with …
CONTEXT_SHOWN = 16  # characters of text shown before each of score's most surprising tokens


def band_style(prob: float | None) -> str:
    """The rich style of a token the model gave prob (None: nothing predicted it, left plain)."""
    if prob is None:
        return ""
    for low, background, colour, _ in BANDS:
        if prob >= low:
            return f"{colour} on {background}"
    return ""


def legend(*, surprisal: bool = False) -> Text:
    """One line naming the bands, each in its own colour (in bits of surprisal, for score)."""
    from rich.text import Text

    line = Text("surprisal, bits: " if surprisal else "probability: ", style="dim")
    for i, (low, _, _, label) in enumerate(BANDS):
        if surprisal:
            label = f"≤{-math.log2(low):.2g}" if low > 0 else f">{-math.log2(BANDS[i - 1][0]):.2g}"
        line.append(f" {label} ", style=band_style(low if low > 0 else 0.0))
        line.append(" ")
    return line


def shaded(pieces: Iterable[tuple[str, float | None]]) -> Text:
    """Text pieces, each shaded by the probability the model gave it."""
    from rich.text import Text

    out = Text()
    for text, prob in pieces:
        out.append(terminal_safe(text), style=band_style(prob))
    return out


def shown_token(tokenizer: Tokenizer, token_id: int, width: int = TOKEN_WIDTH) -> str:
    """A token between pipes with its spaces visible, `|␣the|`, cut to width characters."""
    text = visible(token_text(tokenizer, token_id))
    return f"|{text if len(text) <= width else text[: width - 1] + '…'}|"


class ShadedStream:
    """Turns the pieces of a streaming completion into shaded Text, each character in the band of the
    token that produced it. The completion must record logprobs; pieces come in order."""

    def __init__(self, completion: Completion):
        from ..tokenizers import StreamDecoder

        self.completion = completion
        self._decoder = StreamDecoder(completion.tokenizer)
        self._spans: list[tuple[int, float]] = []  # (end offset in the text, probability), one per token
        self._offset = 0  # characters shaded so far

    def _extend(self) -> None:
        records = self.completion.logprobs
        end = self._spans[-1][0] if self._spans else 0
        for record in records[len(self._spans) :]:
            end += len(self._decoder.push(record.id))
            self._spans.append((end, record.prob))

    def shade(self, piece: str) -> Text:
        self._extend()
        out: list[tuple[str, float | None]] = []
        start = self._offset
        for end, prob in self._spans:
            if end > start and start < self._offset + len(piece):
                stop = min(end, self._offset + len(piece))
                out.append((piece[start - self._offset : stop - self._offset], prob))
                start = stop
        if start < self._offset + len(piece):  # text no recorded token covers (a stop string's re-encoding)
            out.append((piece[start - self._offset :], None))
        self._offset += len(piece)
        return shaded(out)


def why_lines(
    tokenizer: Tokenizer, logits: torch.Tensor, chosen: int, settings: SamplingSettings, *, rows: int = 10
) -> list[str]:
    """/why's table for one position: logits (1, V) as the decode step left them, the token chosen there.

    Each row: rank, token, the model's own probability and log-probability (temperature 1), and the
    probability the session's temperature, top-k and top-p left it: the distribution actually sampled.
    """
    import torch

    from ..model.logprobs import entropy_bits
    from ..model.sampling import next_token_probs

    logp = torch.log_softmax(logits.float(), dim=-1)[0]  # (V,)
    if settings.greedy:  # temperature 0: all the mass on the likeliest token
        sampled = torch.zeros_like(logp).index_fill_(0, logp.argmax().view(1), 1.0)
    else:
        sampled = next_token_probs(logits, settings.temperature, settings.top_k, settings.top_p)[0]
    order = logp.topk(min(rows, logp.numel())).indices.tolist()
    if chosen not in order:
        order.append(chosen)
    how = "greedy" if settings.greedy else f"temp {settings.temperature:g}"
    how += "".join(f", {n} {v:g}" for n, v in (("top-k", settings.top_k), ("top-p", settings.top_p)) if v is not None)
    lines = [f"{'rank':>5}  {'token':<{TOKEN_WIDTH + 2}}  {'p':>7}  {'logprob':>8}  {'sampled p':>9} ({how})"]
    ranks = (logp > logp[chosen]).sum().item() + 1
    for i in order:
        rank = int((logp > logp[i]).sum()) + 1
        mark = "  ← chosen" if i == chosen else ""
        lines.append(
            f"{rank:>5}  {shown_token(tokenizer, i):<{TOKEN_WIDTH + 2}}  {math.exp(logp[i]):>7.4f}  "
            f"{float(logp[i]):>8.3f}  {float(sampled[i]):>9.4f}{mark}"
        )
    entropy = float(entropy_bits(logits)[0])
    lines.append(
        f"entropy {entropy:.2f} bits (a choice among about {2**entropy:.1f} equally likely tokens); "
        f"the chosen token ranked {ranks}"
    )
    return lines


def score_summary(tokenizer: Tokenizer, result: dict, *, worst: int = 5) -> list[str]:
    """score's numbers and its most surprising tokens, with what the model expected there instead."""
    tokens = result["tokens"]
    lines = [
        f"{len(tokens):,} tokens · {result['bits_per_char']:.3f} bits/char · "
        f"{result['nats_per_char']:.4f} nats/char · perplexity {result['perplexity']:.2f} per token"
    ]
    order = sorted((i for i, t in enumerate(tokens) if t["logprob"] is not None), key=lambda i: tokens[i]["logprob"])
    if order:
        lines.append(
            f"the {min(worst, len(order))} most surprising tokens: after what, how many bits, what the model "
            "expected instead"
        )
    for i in order[:worst]:
        t = tokens[i]
        before = visible("".join(u["token"] for u in tokens[max(0, i - CONTEXT_SHOWN) : i]))[-CONTEXT_SHOWN:]
        expected = "  ".join(
            f"{shown_token(tokenizer, a['id'])} {math.exp(a['logprob']):.2f}" for a in t["top_logprobs"][:3]
        )
        lines.append(
            f"  {before:>{CONTEXT_SHOWN}}{shown_token(tokenizer, t['id']):<{TOKEN_WIDTH + 2}} "
            f"{-t['logprob'] / math.log(2):5.1f}  {expected}"
        )
    return lines


def score_text_shaded(result: dict) -> Text:
    """The scored text, each token shaded by the probability the model gave it."""
    return shaded((t["token"], None if t["logprob"] is None else math.exp(t["logprob"])) for t in result["tokens"])


def attention_lines(
    tokenizer: Tokenizer, ids: Sequence[int], attention: torch.Tensor, layers: Iterable[int], *, top: int = 5
) -> list[str]:
    """Each head's most attended tokens from the last position: attention (n_layer, nh, T) over ids."""
    lines = [
        f"where the last position ({shown_token(tokenizer, ids[-1])}, token {len(ids)}) looks, "
        f"by layer and head: the {top} most attended tokens and their weights"
    ]
    for layer in layers:
        for head, row in enumerate(attention[layer]):
            weights, where = row.topk(min(top, row.numel()))
            cells = "  ".join(
                f"{shown_token(tokenizer, ids[j], 8)}@{j + 1} {w:.2f}"
                for w, j in zip(weights.tolist(), where.tolist(), strict=True)
            )
            lines.append(f"L{layer} H{head}  {cells}")
    return lines


def lens_lines(tokenizer: Tokenizer, lens: Sequence[LensRow]) -> list[str]:
    """The logit lens: each layer's top tokens and the probability it gives the model's final choice."""
    final = lens[-1].top[0][0]
    choice = shown_token(tokenizer, final)
    lines = [f"the logit lens: what each layer would predict next; the model's choice is {choice}"]
    for row in lens:
        name = "embed" if row.layer == 0 else f"L{row.layer - 1}" + (" out" if row is lens[-1] else "")
        cells = "  ".join(f"{shown_token(tokenizer, i, 8)} {p:.2f}" for i, p in row.top)
        lines.append(f"{name:>6}  {cells}   choice {row.final_prob:.3f}")
    return lines
