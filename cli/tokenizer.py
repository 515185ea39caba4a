"""`scratchgpt tokenizer train|show`: learn a BPE vocabulary from your text, and see how a vocabulary splits text."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..core.bounds import whole
from ..core.errors import ScratchGPTError
from ..core.text import counted, quoted_arg
from .common import Parser
from .console import make_console

SHOWN_MERGES = 8  # first and last merges `show` lists


def tokenizer_parser() -> Parser:
    about = "Learn a byte-level BPE vocabulary from your own text (train), or see how a vocabulary splits a text"
    p = Parser(prog="scratchgpt tokenizer", description=about + " and how well it compresses a corpus (show).")
    sub = p.add_subparsers(dest="action", required=True, metavar="{train,show}", parser_class=Parser)
    t = sub.add_parser(
        "train",
        prog="scratchgpt tokenizer train",
        help="learn a BPE vocabulary from a corpus",
        description="Learn a byte-level BPE vocabulary from a corpus's training split (its first "
        "90%): GPT-4's pre-split, then merges of the most frequent adjacent pair.",
    )
    t.add_argument("corpus", metavar="CORPUS", help="registered corpus name or path to a UTF-8 text file")
    t.add_argument(
        "--vocab-size",
        type=whole(258, 1 << 20),
        default=4096,
        help="ids in all: 256 bytes, the merges, and <|endoftext|>",
    )
    t.add_argument("--out", help="the tokenizer file to write (default: CORPUS's name + -bpe-N.json)")
    t.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    t.add_argument("--lossy", action="store_true", help="read a corpus that is not valid UTF-8, replacing bad bytes")
    t.add_argument("--debug", action="store_true", help="show tracebacks")
    s = sub.add_parser(
        "show",
        prog="scratchgpt tokenizer show",
        help="how a vocabulary splits a text",
        description="How a tokenizer file's or a checkpoint's vocabulary splits a text, its first and "
        "last merges, and its compression on a corpus's validation split beside char, word and "
        "GPT-2's BPE.",
    )
    s.add_argument("source", metavar="FILE|CHECKPOINT", help="a tokenizer .json or a .safetensors checkpoint")
    s.add_argument("-p", "--prompt", help="the text to split")
    s.add_argument("--corpus", help="measure characters per token on this corpus's validation split")
    s.add_argument("--ids", action="store_true", help="print each token's id after it")
    s.add_argument("--debug", action="store_true", help="show tracebacks")
    return p


def cmd_tokenizer(argv: Sequence[str]) -> int:
    args = tokenizer_parser().parse_args(argv)
    return train_tokenizer(args) if args.action == "train" else show_tokenizer(args)


def train_tokenizer(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data import resolve_corpus
    from ..data.learned import training_text
    from ..tokenizers.learned import BYTES, SPECIALS, LearnedBPETokenizer, save_tokenizer

    corpus = resolve_corpus(args.corpus)
    out = Path(args.out or f"{corpus.name}-bpe-{args.vocab_size}.json").expanduser()
    if out.is_dir():
        example = out / "bpe.json"
        raise ScratchGPTError(f"--out {quoted_arg(str(out))} is a directory; name a file in it, e.g. {example}")
    if out.exists() and not args.overwrite:
        raise ScratchGPTError(f"{quoted_arg(str(out))} exists; pass --overwrite to replace it, or another --out")
    text = training_text(corpus, lossy=args.lossy)
    wanted = args.vocab_size - BYTES - len(SPECIALS)
    console = make_console(sys.stderr)
    started = time.perf_counter()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("merges", total=wanted)

        def on_merge(n: int, pair: tuple[int, int], joined: bytes) -> None:
            left, right = (_piece(tokens[i]) for i in pair)
            tokens.append(joined)
            bar.update(task, completed=n, description=f"#{n:<5} {left} + {right} → {_piece(joined)}")

        tokens = [bytes([b]) for b in range(BYTES)]
        tokenizer = LearnedBPETokenizer.fit([text], vocab_size=args.vocab_size, on_merge=on_merge)
    seconds = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tokenizer, out)
    learned = len(tokenizer.merges)
    short = f" (the text held no more pairs: vocabulary {tokenizer.vocab_size})" if learned < wanted else ""
    print(f"learned {counted(learned, 'merge')} from {corpus.name}'s training split in {seconds:.1f} s{short}")
    print(f"wrote {out}; train on it with: scratchgpt train --corpus {args.corpus} --tokenizer {out}")
    return 0


def show_tokenizer(args) -> int:
    from ..data import resolve_corpus

    tokenizer = _load_any(Path(args.source).expanduser())
    console = make_console()
    console.print(f"{args.source}: {tokenizer.name} vocabulary of {tokenizer.vocab_size:,} ids")
    merges = getattr(tokenizer, "merges", None)
    if merges:
        tokens = tokenizer.tokens
        console.print("first merges: " + "  ".join(_merge(tokens, i) for i in range(min(SHOWN_MERGES, len(merges)))))
        last = range(max(SHOWN_MERGES, len(merges) - SHOWN_MERGES), len(merges))
        if last:
            console.print("last merges:  " + "  ".join(_merge(tokens, i) for i in last))
    if args.prompt is not None:
        console.print(split_view(tokenizer, args.prompt, ids=args.ids, color=console.color_system is not None))
    if args.corpus:
        rows = compression_table(tokenizer, resolve_corpus(args.corpus))
        console.print(f"characters per token on {args.corpus}'s validation split:")
        for name, value in rows:
            console.print(f"  {name:<28} {value:6.3f}")
    return 0


def _load_any(path: Path):
    """The tokenizer of a tokenizer file or of a checkpoint."""
    from ..model.checkpoint import checkpoint_metadata
    from ..tokenizers import tokenizer_from_spec
    from ..tokenizers.learned import load_tokenizer_file

    if path.suffix == ".json":
        return load_tokenizer_file(path)
    if not path.is_file():
        raise ScratchGPTError(f"no file {quoted_arg(str(path))}; give a tokenizer .json or a checkpoint")
    return tokenizer_from_spec(checkpoint_metadata(path)["tokenizer"])


def _piece(token: bytes) -> str:
    """A token's bytes as a quoted string (bytes that are not UTF-8 as escapes)."""
    return json.dumps(token.decode("utf-8", errors="backslashreplace"), ensure_ascii=False)


def _merge(tokens: list[bytes], i: int) -> str:
    return f"#{i + 1} {_piece(tokens[256 + i])}"


def token_pieces(tokenizer, text: str) -> list[tuple[int, str]]:
    """Each token of text with the text it completes (empty for a token that ends inside a character)."""
    from ..tokenizers import StreamDecoder

    decoder = StreamDecoder(tokenizer)
    pieces = [(i, decoder.push(i)) for i in tokenizer.encode(text)]
    if pieces and (rest := decoder.flush()):
        pieces[-1] = (pieces[-1][0], pieces[-1][1] + rest)
    return pieces


def split_view(tokenizer, text: str, *, ids: bool = False, color: bool = True):
    """text as the tokenizer splits it: tokens shaded alternately (or between bars without colour), spaces as ·,
    line breaks as ↵, and each token's id after it on request."""
    from rich.text import Text

    view = Text()
    pieces = token_pieces(tokenizer, text)
    for n, (token_id, piece) in enumerate(pieces):
        shown_piece = piece.replace(" ", "·").replace("\n", "↵\n").replace("\t", "→")
        label = shown_piece + (f"[{token_id}]" if ids else "")
        if color:
            view.append(label, style="on grey30" if n % 2 else "on grey15")
        else:
            view.append(label + "|")
    view.append(f"\n{counted(len(pieces), 'token')}, {len(text) / max(len(pieces), 1):.2f} characters a token")
    return view


def compression_table(tokenizer, corpus) -> list[tuple[str, float]]:
    """Characters per token on corpus's validation split: this tokenizer, then char, word and GPT-2's BPE
    (char and word fitted to the training split, GPT-2's in full)."""
    from ..data.learned import text_splits
    from ..tokenizers import CharTokenizer, TiktokenTokenizer, WordTokenizer

    train, val = text_splits(corpus)
    others = [
        ("char", CharTokenizer.fit([train])),
        ("word (8,192 pieces)", WordTokenizer.fit([train])),
        ("GPT-2 BPE (50,257 ids)", TiktokenTokenizer()),
    ]
    rows = [(f"this ({tokenizer.name}, {tokenizer.vocab_size:,} ids)", tokenizer)] + others
    return [(name, len(val) / max(len(tok.encode(val)), 1)) for name, tok in rows]
