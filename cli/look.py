"""`scratchgpt score` and `scratchgpt inspect`, and what `sample --logprobs` prints: the command-line
front of model/inspection.py. Thin: parse flags, call the package, lay the numbers out (inspect_view.py)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.bounds import whole
from ..core.cores import use_threads
from ..core.errors import ScratchGPTError
from ..core.interrupt import InterruptFlag
from ..tokenizers import TOKENIZER_NAMES
from ..tokenizers.base import unknown_notice
from .common import Parser
from .console import make_console
from .flags import SOURCE_HELP, TOP_LOGPROBS, add_threads_flag, open_source

if TYPE_CHECKING:
    from ..model.checkpoint import Checkpoint
    from ..model.engine import Completion
    from ..tokenizers import Tokenizer


def _model_flags(p: Parser) -> None:
    """The flags after the command's own (the [CHECKPOINT] positional is added first, see _parser)."""
    p.add_argument("--tokenizer", choices=TOKENIZER_NAMES, help="the shipped model of this vocabulary")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    add_threads_flag(p, decoding=False)
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def _parser(prog: str, description: str) -> Parser:
    p = Parser(prog=prog, description=description)
    p.add_checkpoint_arguments(f"{SOURCE_HELP} (default: the shipped model of --tokenizer, char)")
    return p


def score_parser() -> Parser:
    p = _parser(
        "scratchgpt score",
        "How surprised a model is by your text: each token shaded by "
        "its surprisal (-log2 p), bits and nats per char, perplexity, and the most surprising tokens "
        "with what the model expected instead.",
    )
    a = p.add_argument
    a("file", metavar="FILE", help="a UTF-8 text file, or - for standard input")
    a(
        "--top",
        type=TOP_LOGPROBS,
        default=0,
        help=f"alternatives per token in --json ({TOP_LOGPROBS.span()}, default 0)",
    )
    a("--against", metavar="OTHER", help="score the same text under a second model and show where they disagree most")
    a(
        "--stride",
        type=whole(1, 1 << 20),
        help="a text longer than the window is scored by windows this far apart, "
        "each token once, with at least window - stride tokens of context (default: 2/3 of the window)",
    )
    a(
        "--json",
        action="store_true",
        help="one JSON object: tokens with logprob and top_logprobs, nats_per_char, bits_per_char, perplexity",
    )
    _model_flags(p)
    return p


def inspect_parser() -> Parser:
    p = _parser(
        "scratchgpt inspect",
        "Where the last position of a prompt looks (each layer's "
        "and head's attention) and what each layer would predict next (the logit lens).",
    )
    a = p.add_argument
    a("-p", "--prompt", default="", help="the text to look inside with (within the model's window)")
    a("--layer", type=whole(0, 1 << 10), help="show this layer's heads only (default: every layer)")
    a("--top", type=whole(1, int(TOP_LOGPROBS.high)), default=5, help="tokens per head and per lens row (default 5)")
    a("--json", action="store_true", help='one JSON object: {"tokens", "attention": [layer][head][position], "lens"}')
    a("--png", metavar="FILE", help="also draw every layer's and head's attention as a grid of heatmaps")
    _model_flags(p)
    return p


def _read_text(file: str) -> str:
    if file == "-":
        return sys.stdin.read()
    path = Path(file).expanduser()
    if not path.is_file():
        what = f"{file} is a directory" if path.is_dir() else f"no file at {file}"
        raise ScratchGPTError(f"{what}; give a UTF-8 text file, or - to read standard input")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ScratchGPTError(f"{file} is not UTF-8 text; convert it (iconv -t UTF-8) and score it again") from None


def note_unknown(tokenizer: Tokenizer, text: str) -> None:
    """A note on stderr when the vocabulary cannot spell text exactly: what is scored is then not quite it."""
    if lacking := tokenizer.unknown(text):
        print(f"note: {unknown_notice(tokenizer, lacking)}", file=sys.stderr)


def check_same_tokens(a: dict, b: dict, *named: tuple[str, Checkpoint], text: str) -> None:
    """Two scores compare token by token only when both models split text alike; if not, say which
    characters (or words) one vocabulary lacks, as a fine-tune that grew its vocabulary makes happen."""
    if [t["id"] for t in a["tokens"]] == [t["id"] for t in b["tokens"]]:
        return
    lacks = [
        f"{name} lacks {', '.join(map(repr, missing[:8]))}"
        for name, ckpt in named
        if (missing := ckpt.tokenizer.unknown(text))
    ]
    why = "; ".join(lacks) or "their vocabularies differ"
    raise ScratchGPTError(
        f"the two models split the text into different tokens ({why}); compare models of one "
        "vocabulary, or a text both can spell"
    )


def cmd_score(argv: Sequence[str]) -> int:
    args = score_parser().parse_args(argv)
    use_threads(args.threads)
    from ..model.inspection import default_stride, disagreements, score_text
    from .inspect_view import legend, score_summary, score_text_shaded

    text = _read_text(args.file)
    ckpt = open_source(args.checkpoint, args.tokenizer, args.device)
    note_unknown(ckpt.tokenizer, text)
    top = args.top if args.json else max(args.top, 3)  # the summary names three expected tokens
    result = score_text(ckpt.model, ckpt.tokenizer, text, top=top, stride=args.stride)
    block = ckpt.config.block_size
    if len(result["tokens"]) > block:
        stride = args.stride or default_stride(block)
        print(
            f"note: {len(result['tokens']):,} tokens, more than the model's window of {block}: scored by windows "
            f"{stride} apart, every token once, with at least {block - stride} tokens of context",
            file=sys.stderr,
        )
    other = None
    if args.against:
        against = open_source(args.against, None, args.device)
        other = score_text(against.model, against.tokenizer, text, top=top, stride=args.stride)
        check_same_tokens(result, other, (args.checkpoint or "the model", ckpt), (args.against, against), text=text)
        differ = disagreements(result, other)
    if args.json:
        print(json.dumps(result if other is None else {"score": result, "against": other, "disagreements": differ}))
        return 0
    console = make_console(sys.stdout)
    console.print(score_text_shaded(result))
    console.print(legend())
    for line in score_summary(ckpt.tokenizer, result):
        console.print(line)
    if other is not None:
        _print_against(console, ckpt, other, differ)
    return 0


def _print_against(console, ckpt: Checkpoint, other: dict, differ: list[dict]) -> None:
    from .inspect_view import shown_token

    console.print(
        f"against it: {other['bits_per_char']:.3f} bits/char · {other['nats_per_char']:.4f} nats/char · "
        f"perplexity {other['perplexity']:.2f}"
    )
    console.print("where they disagree most (the probability each gave the token, first model → second):")
    for row in differ:
        a, b = math.exp(row["logprob_a"]), math.exp(row["logprob_b"])
        console.print(
            f"  token {row['position'] + 1:>6}  {shown_token(ckpt.tokenizer, row['id']):<14}  {a:.3f} → {b:.3f}"
        )


def cmd_inspect(argv: Sequence[str]) -> int:
    args = inspect_parser().parse_args(argv)
    use_threads(args.threads)
    from ..model.inspection import inspectable_ids, inspection_json, layers_to_show, look_inside
    from .inspect_view import attention_lines, lens_lines

    ckpt = open_source(args.checkpoint, args.tokenizer, args.device)
    model, tokenizer = ckpt.model, ckpt.tokenizer
    note_unknown(tokenizer, args.prompt)
    layers = layers_to_show(model, args.layer)
    ids = inspectable_ids(model, tokenizer, args.prompt)
    attention, lens = look_inside(model, ids, top=args.top)
    if args.json:
        print(json.dumps(inspection_json(tokenizer, ids, attention, lens)))
    if args.png:
        from ..model.inspection import token_text, visible
        from .plot import plot_attention

        out = plot_attention(attention, [visible(token_text(tokenizer, i)) for i in ids], args.png)
        print(f"wrote {out}", file=sys.stderr)
    if args.json:
        return 0
    console = make_console(sys.stdout)
    for line in attention_lines(tokenizer, ids, attention[:, :, -1, :], layers, top=args.top):
        console.print(line)
    for line in lens_lines(tokenizer, lens):
        console.print(line)
    return 0


def completion_json(completion: Completion) -> dict:
    """`sample --json`: the text and, when asked, each token's logprobs in OpenAI's field names."""
    from ..model.inspection import token_text

    tok = completion.tokenizer

    def entry(i: int, logprob: float) -> dict:
        return {"token": token_text(tok, i), "id": i, "logprob": logprob, "bytes": list(tok.token_bytes(i))}

    logprobs = None
    if completion.top_logprobs is not None:
        content = [
            {**entry(r.id, r.logprob), "top_logprobs": [entry(i, lp) for i, lp in r.top]} for r in completion.logprobs
        ]
        logprobs = {"content": content}
    return {"text": completion.text, "logprobs": logprobs}


def sample_looking(completion: Completion, prompt: str, *, as_json: bool) -> int:
    """`sample --json` (one object when the reply is done) or `sample --logprobs K` (the reply streamed,
    each token shaded by its probability, the legend after it)."""
    with InterruptFlag().active(raise_now=True) as ctrl_c:
        if as_json:
            for _ in completion:
                ctrl_c.check()
            print(json.dumps(completion_json(completion)))
            return 0
        from .inspect_view import ShadedStream, legend

        console, stream = make_console(sys.stdout), ShadedStream(completion)
        console.print(prompt, end="")
        for piece in completion:
            ctrl_c.check()
            console.print(stream.shade(piece), end="")
    console.print()
    console.print(legend())
    return 0
