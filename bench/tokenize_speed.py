"""Tokenization speed and memory: load_tokens' streamed, threaded GPT-2 path against one encode call.

    python bench/tokenize_speed.py [--speed-mb 50] [--repeats 3] [--size-gb 2.2] [--tmp-dir DIR] [--quick]

Speed, on Tiny Shakespeare repeated to about --speed-mb MB, full GPT-2 BPE, medians of --repeats
(interleaved, so machine noise hits each alike):
  streamed   load_tokens from the file to its token file: pieces cut at stable points, batches
             encoded by tiktoken's encode_ordinary_batch on one thread per CPU, ids appended
  one_call   a single tiktoken encode_ordinary over the whole text, already in memory
  in_memory  encode_ordinary_batch over the same pieces as streamed, already in memory: how far
             threads alone speed tiktoken up on this machine, without reading, converting or writing
Memory (Linux): child processes run load_tokens on Tiny Shakespeare repeated past --size-gb GB,
and one encode_ordinary reading the speed corpus; each prints its peak RSS (VmHWM, restarted once
imports and GPT-2's ranks are loaded) next to its RSS at that point. Corpora and token files live
in a temporary directory (caches too: XDG_CACHE_HOME points there), deleted at the end.
Tiny Shakespeare is found as by `scratchgpt train` (set SCRATCHGPT_DATA offline).
The last line is `tokenize_speedup=<streamed MB/s / one_call MB/s>`.
--quick: 5 MB, 1 repeat, 0.05 GB, for a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.data import iter_text, load_tokens, resolve_corpus, token_file
from scratchgpt.data.tokens import CHUNK_BYTES, _stable_pieces
from scratchgpt.tokenizers import TiktokenTokenizer
from scratchgpt.tokenizers.bpe import ENCODE_THREADS, gpt2_encoding


def rss_mb(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of this process from /proc, in MB; Linux only."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) / 1024


def reset_peak_rss() -> None:
    """Start VmHWM afresh from the current RSS, so setup (imports, loading GPT-2's ranks) is not counted."""
    Path("/proc/self/clear_refs").write_text("5")


def write_repeated(text: str, path: Path, size_bytes: int) -> int:
    """text written again and again to path until it holds at least size_bytes; returns its size."""
    block = text.encode("utf-8") * max(1, (64 << 20) // len(text.encode("utf-8")))  # about 64 MiB per write
    written = 0
    with open(path, "wb") as f:
        while written < size_bytes:
            part = block[: max(size_bytes - written, 1)]
            cut = part.rfind(b"\n") + 1 or len(part)  # end on a whole line
            f.write(part[:cut])
            written += cut
    return written


def timed_streamed(corpus, tokenizer) -> tuple[float, np.ndarray]:
    token_file(corpus, tokenizer).unlink(missing_ok=True)  # tokenize afresh, not from the cache
    t0 = time.perf_counter()
    tokens = load_tokens(corpus, tokenizer)
    return time.perf_counter() - t0, tokens


def timed_one_call(text: str) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    ids = gpt2_encoding().encode_ordinary(text)
    return time.perf_counter() - t0, ids


def timed_in_memory(pieces: list[str]) -> float:
    t0 = time.perf_counter()
    gpt2_encoding().encode_ordinary_batch(pieces, num_threads=ENCODE_THREADS)
    return time.perf_counter() - t0


def child(mode: str, path: str) -> None:
    """Runs in a fresh process so its peak RSS is this one job's; prints a JSON line."""
    tokenizer = TiktokenTokenizer()
    corpus = resolve_corpus(Path(path))  # hashes the file, 1 MiB at a time (not timed)
    reset_peak_rss()
    before = rss_mb("VmRSS")
    t0 = time.perf_counter()
    if mode == "streamed":
        n_tokens = len(load_tokens(corpus, tokenizer))
    else:
        n_tokens = len(gpt2_encoding().encode_ordinary(Path(path).read_text(encoding="utf-8")))
    seconds = time.perf_counter() - t0
    print(json.dumps({"rss_before_mb": before, "peak_rss_mb": rss_mb("VmHWM"), "tokens": n_tokens, "seconds": seconds}))


def run_child(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(path)], check=True, capture_output=True, text=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--speed-mb", type=float, default=50.0, help="size of the speed corpus in MB (default 50)")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of each path (default 3)")
    ap.add_argument("--size-gb", type=float, default=2.2, help="size of the memory corpus in GB (default 2.2)")
    ap.add_argument("--tmp-dir", default=None, help="where the corpora and token files go (default: system temp)")
    ap.add_argument("--quick", action="store_true", help="5 MB, 1 repeat, 0.05 GB")
    ap.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.quick:
        args.speed_mb, args.repeats, args.size_gb = 5.0, 1, 0.05

    try:
        shakespeare = "".join(iter_text(resolve_corpus("tinyshakespeare")))  # found before the cache moves
    except ScratchGPTError as e:
        sys.exit(f"error: {e}")
    speed_bytes, big_bytes = int(args.speed_mb * 1e6), int(args.size_gb * 1e9)
    need = 1.7 * (speed_bytes + big_bytes)  # each corpus plus its uint16 token file (~0.6 byte per byte)
    tmp_root = Path(args.tmp_dir or tempfile.gettempdir())
    if shutil.disk_usage(tmp_root).free < need:
        sys.exit(f"error: {tmp_root} has less than {need / 1e9:.1f} GB free; pass --tmp-dir or a smaller --size-gb")
    work = Path(tempfile.mkdtemp(prefix="scratchgpt-tokbench-", dir=tmp_root))
    os.environ["XDG_CACHE_HOME"] = str(work / "cache")  # token files land here, not in the user's cache
    try:
        speed_path = work / "speed.txt"
        size = write_repeated(shakespeare, speed_path, speed_bytes)
        text = speed_path.read_text(encoding="utf-8")
        corpus, tokenizer = resolve_corpus(speed_path), TiktokenTokenizer()
        timed_one_call(text[:100_000])  # warm up both paths
        pieces = list(_stable_pieces(iter_text(corpus, chunk_bytes=CHUNK_BYTES)))
        streamed_s, one_call_s, in_memory_s = [], [], []
        for _ in range(args.repeats):
            seconds, tokens = timed_streamed(corpus, tokenizer)
            streamed_s.append(seconds)
            seconds, ids = timed_one_call(text)
            one_call_s.append(seconds)
            in_memory_s.append(timed_in_memory(pieces))
        identical, n_tokens = bool(np.array_equal(tokens, np.asarray(ids))), len(ids)
        del text, ids, tokens, pieces
        streamed, one_call, in_memory = (statistics.median(t) for t in (streamed_s, one_call_s, in_memory_s))
        one_call_mem = run_child("one_call", speed_path)
        speed_path.unlink()
        token_file(corpus, tokenizer).unlink(missing_ok=True)

        big_path = work / "big.txt"
        big_size = write_repeated(shakespeare, big_path, big_bytes)
        streamed_mem = run_child("streamed", big_path)

        print(f"cpus: {os.cpu_count()}  encode threads: {ENCODE_THREADS}  tokenizer: GPT-2 BPE (full)")
        print(
            f"speed corpus: Tiny Shakespeare x{size / len(shakespeare.encode()):.0f} = {size / 1e6:.1f} MB, "
            f"{n_tokens} tokens; medians of {args.repeats}"
        )
        for name, seconds in [
            ("streamed (load_tokens, threaded)", streamed),
            ("one_call (encode_ordinary)", one_call),
            ("in_memory (encode_ordinary_batch)", in_memory),
        ]:
            print(f"{name + ':':36s}{size / 1e6 / seconds:7.2f} MB/s  ({seconds:.2f} s)")
        print(f"ids identical: {identical}")
        print(
            f"peak RSS, one encode_ordinary reading {size / 1e6:.0f} MB: {one_call_mem['peak_rss_mb']:.0f} MB "
            f"(RSS before {one_call_mem['rss_before_mb']:.0f} MB)"
        )
        print(
            f"peak RSS, load_tokens over {big_size / 1e9:.2f} GB: {streamed_mem['peak_rss_mb']:.0f} MB "
            f"(RSS before {streamed_mem['rss_before_mb']:.0f} MB); {streamed_mem['tokens']} tokens "
            f"at {big_size / 1e6 / streamed_mem['seconds']:.2f} MB/s"
        )
        print(f"tokenize_speedup={one_call / streamed:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
