"""Learning a BPE vocabulary (tokenizers/learned.py) against Hugging Face `tokenizers`' Rust trainer, side by side.

    python bench/tokenizer_train.py [--vocab-size 4096] [--repeats 3] [--sizes 1,10,100]

On Tiny Shakespeare's training split (its first 90%), medians of --repeats, interleaved:
  ours       LearnedBPETokenizer.fit: GPT-4's pre-split, incremental pair counts, a heap (Python)
  hf         tokenizers' BpeTrainer, byte-level, the same pre-split pattern, the same vocabulary size (Rust)
Then characters per token of each on the validation split (the last 10%), encoding speed of ours (tiktoken
built from the learned ranks) beside GPT-2's BPE through tiktoken on the whole corpus (tokens/s, one thread,
medians of 5), and how learning grows with the text: the corpus repeated to each of --sizes MB, the time to
count its chunks (grows with the text) apart from the time to learn the merges (grows with the distinct
chunks, which repeating the text does not add to). Hugging Face `tokenizers` is a reference only: it is
not a dependency of ScratchGPT (pip install tokenizers to run this).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from scratchgpt.data import iter_text, resolve_corpus
from scratchgpt.tokenizers import TiktokenTokenizer
from scratchgpt.tokenizers.learned import PATTERN, SPECIALS, LearnedBPETokenizer, count_chunks, learn_merges


def hf_train(text: str, vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIALS),
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator([text], trainer=trainer)
    return tokenizer


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sizes", default="1,10,100", help="MB of text for the growth table (the corpus repeated)")
    args = p.parse_args()
    text = "".join(iter_text(resolve_corpus("tinyshakespeare")))
    cut = int(0.9 * len(text))
    train, val = text[:cut], text[cut:]
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; Tiny Shakespeare "
        f"({len(train):,} training characters), vocabulary {args.vocab_size}"
    )

    ours_s, hf_s = [], []
    for _ in range(args.repeats):
        s, ours = timed(lambda: LearnedBPETokenizer.fit([train], vocab_size=args.vocab_size))
        ours_s.append(s)
        s, hf = timed(hf_train, train, args.vocab_size)
        hf_s.append(s)
    ours_cpt = len(val) / len(ours.encode(val))
    hf_cpt = len(val) / len(hf.encode(val).ids)
    print(
        f"learn     ours {statistics.median(ours_s):6.2f} s   hf {statistics.median(hf_s):6.2f} s   "
        f"ours/hf {statistics.median(ours_s) / statistics.median(hf_s):5.1f}x"
    )
    print(f"val chars/token   ours {ours_cpt:.4f}   hf {hf_cpt:.4f}   ours/hf {ours_cpt / hf_cpt:.4f}")

    gpt2 = TiktokenTokenizer()
    rates = {"ours": [], "gpt2": []}
    for _ in range(5):
        for name, tok in (("ours", ours), ("gpt2", gpt2)):
            s, ids = timed(tok.encode, text)
            rates[name].append(len(ids) / s)
    ours_rate, gpt2_rate = statistics.median(rates["ours"]), statistics.median(rates["gpt2"])
    print(
        f"encode    ours {ours_rate / 1e6:.2f} M tokens/s   gpt2 {gpt2_rate / 1e6:.2f} M tokens/s   "
        f"ours/gpt2 {ours_rate / gpt2_rate:.2f}"
    )

    print("growth    MB   distinct chunks   count s   merges s")
    for mb in (float(x) for x in args.sizes.split(",")):
        big = (train * (int(mb * 1e6 / len(train)) + 1))[: int(mb * 1e6)]
        count_s, counts = timed(count_chunks, [big])
        merge_s, _ = timed(learn_merges, counts, args.vocab_size - 256 - len(SPECIALS))
        print(f"          {mb:4g}   {len(counts):15,}   {count_s:7.2f}   {merge_s:8.2f}")


if __name__ == "__main__":
    main()
