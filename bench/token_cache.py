"""What checking a token cache costs before each use: an unchanged file (a stat) vs a changed one (a full read).

A token file's record holds its length, a CRC-32 of its bytes and its inode and mtime. An unchanged
file is checked by a stat; one whose inode or mtime moved (rewritten, copied) is read whole for its
CRC and id range. This times both on a file of --mb megabytes (written here, in a temp folder).

    python bench/token_cache.py [--mb 1024]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

from scratchgpt.data.tokens import _write_record, check_token_file

VOCAB = 50_257  # GPT-2's: uint16 ids


def timed(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        assert fn() is None
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=1024, help="size of the token file (default 1024)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.bin"
        ids = np.random.default_rng(0).integers(0, VOCAB, args.mb * (1 << 19), dtype=np.uint16)
        path.write_bytes(ids.tobytes())
        _write_record(path, path, crc=zlib.crc32(ids.tobytes()), vocab_size=VOCAB)
        unchanged = timed(lambda: check_token_file(path, VOCAB), rounds=50)

        def changed():
            os.utime(path)  # as a rewrite or a copy leaves it: same bytes, new mtime
            return check_token_file(path, VOCAB)

        changed(), changed()  # the page cache warm: the figure is the check's, not the disk's
        full = timed(changed, rounds=5)
    print(f"token file: {args.mb:,} MB ({args.mb * (1 << 19):,} uint16 ids)")
    print(f"unchanged (stat):      {unchanged * 1e6:9.1f} us")
    print(f"changed (CRC + range): {full * 1e3:9.1f} ms  ({args.mb / 1024 / full:.2f} GB/s, page cache warm)")
    print(f"full_check_vs_stat={full / unchanged:,.0f}")


if __name__ == "__main__":
    main()
