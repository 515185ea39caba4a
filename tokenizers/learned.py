"""A byte-level BPE vocabulary learned from your own text: the trainer, and tiktoken for encoding.

Training, as in GPT-2's paper and the "Let's build the GPT tokenizer" lesson:
  1. pre-split the text into chunks with GPT-4's regular expression (PATTERN), so no token spans a
     word and the space before the next one, a run of digits longer than three, or a line break
     and the word after it; count each distinct chunk once, with its frequency;
  2. start every chunk as its UTF-8 bytes (ids 0..255: any string encodes, no unknown token);
  3. repeat: merge the most frequent adjacent pair of ids into a new id (256, 257, ...).
Pair counts are kept up to date as merges are applied: a merge touches only the chunks that hold
its pair (found through an index pair -> chunks), and a heap with stale entries skipped finds the
next pair, so a merge costs what it changes, not a recount of the corpus (minbpe's way).
Ties go to the smallest pair of ids, so the same text and settings give the same merges anywhere.

Encoding and decoding go through a tiktoken Encoding built from the learned ranks (token bytes ->
id), at tiktoken's speed; `reference_encode` is the same algorithm in plain Python, for tests.
tiktoken ranks byte strings, not pairs: a pair whose bytes another merge already made would be a
second id for the same bytes, so the trainer merges such a pair into the existing id and records
no new one (rare; it keeps tiktoken and the trainer's segmentation the same).

The file (`LearnedBPETokenizer.spec()`, saved as JSON, also stored in checkpoints):
  {"name": "bpe", "version": 1, "pattern": PATTERN, "merges": [[left, right], ...],
   "specials": {"<|endoftext|>": id}}
merges[i] made id 256 + i; the specials follow the merges. "<|endoftext|>" typed as text is ordinary text.
"""

from __future__ import annotations

import functools
import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import regex
import tiktoken

from ..core.errors import ScratchGPTError
from ..core.files import atomic_write_bytes
from .base import SPEC_VERSION, Tokenizer, check_spec, lone_surrogates, replace_lone_surrogates

# GPT-4's pre-split (tiktoken's cl100k_base): contractions, letter runs with one leading non-letter,
# digits in runs of at most three, punctuation runs (with the line breaks after them), whitespace.
# Chosen over GPT-2's for its digit groups and because GPT-2's keeps "\n\n" out of words less tidily.
PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
ENDOFTEXT = "<|endoftext|>"
SPECIALS = (ENDOFTEXT,)
BYTES = 256  # ids 0..255 are the single bytes
DEFAULT_VOCAB_SIZE = 4096
MAX_VOCAB_SIZE = 1 << 20

Pair = tuple[int, int]
OnMerge = Callable[[int, Pair, bytes], None]  # (merge number, pair, the new token's bytes)


def count_chunks(texts: Iterable[str], pattern: str = PATTERN) -> Counter[str]:
    """How often each distinct pre-split chunk occurs in texts."""
    split = regex.compile(pattern).findall
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(split(replace_lone_surrogates(text)))
    return counts


class _PairCounts:
    """Every chunk as a list of ids, and the count of each adjacent pair over all of them (weighted by frequency)."""

    def __init__(self, chunk_counts: Counter[str]):
        self.chunks = [list(chunk.encode("utf-8")) for chunk in chunk_counts]
        self.freq = list(chunk_counts.values())
        self.count: Counter[Pair] = Counter()
        self.where: defaultdict[Pair, set[int]] = defaultdict(set)  # pair -> chunks holding it
        for i, ids in enumerate(self.chunks):
            self._add(i, ids, +1)
        self.heap = [(-n, pair) for pair, n in self.count.items()]
        heapq.heapify(self.heap)

    def _add(self, i: int, ids: list[int], sign: int) -> None:
        for pair in pairwise(ids):
            self.count[pair] += sign * self.freq[i]
            if sign > 0:
                self.where[pair].add(i)

    def most_frequent(self) -> Pair | None:
        """The pair counted most often (ties: the smallest pair), or None when no pair is left."""
        while self.heap:
            n, pair = self.heap[0]
            if -n == self.count.get(pair, 0) and n < 0:
                return pair
            heapq.heappop(self.heap)  # stale: the pair's count changed since this entry was pushed
        return None

    def merge(self, pair: Pair, new_id: int) -> None:
        """Replace pair by new_id in every chunk holding it, updating the counts of the pairs around it."""
        touched: set[Pair] = set()
        for i in self.where.pop(pair, ()):
            old = self.chunks[i]
            new = merged(old, pair, new_id)
            self._add(i, old, -1)
            for gone in set(pairwise(old)) - set(pairwise(new)):
                self.where[gone].discard(i)
            self._add(i, new, +1)
            touched.update(pairwise(old), pairwise(new))
            self.chunks[i] = new
        self.count.pop(pair, None)
        for p in touched - {pair}:
            if self.count[p] > 0:
                heapq.heappush(self.heap, (-self.count[p], p))
            else:
                self.count.pop(p, None)


def merged(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """ids with each occurrence of pair, left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(chunk_counts: Counter[str], n_merges: int, on_merge: OnMerge | None = None) -> list[Pair]:
    """Up to n_merges merges (fewer when the text runs out of pairs), in the order they were learned."""
    pairs = _PairCounts(chunk_counts)
    token_bytes = [bytes([b]) for b in range(BYTES)]
    id_of = {b: i for i, b in enumerate(token_bytes)}
    merges: list[Pair] = []
    while len(merges) < n_merges and (pair := pairs.most_frequent()) is not None:
        joined = token_bytes[pair[0]] + token_bytes[pair[1]]
        if joined in id_of:  # the same bytes as an earlier token: merge into it, no new id (see the docstring)
            pairs.merge(pair, id_of[joined])
            continue
        new_id = BYTES + len(merges)
        pairs.merge(pair, new_id)
        merges.append(pair)
        token_bytes.append(joined)
        id_of[joined] = new_id
        if on_merge is not None:
            on_merge(len(merges), pair, joined)
    return merges


def _token_bytes(merges: Sequence[Pair]) -> list[bytes]:
    """The bytes of every id the merges define (bytes first, then one per merge)."""
    out = [bytes([b]) for b in range(BYTES)]
    for left, right in merges:
        out.append(out[left] + out[right])
    return out


class LearnedBPETokenizer(Tokenizer):
    """Byte-level BPE with merges learned from a corpus (see the module docstring)."""

    name = "bpe"

    def __init__(self, merges: Sequence[Sequence[int]], pattern: str = PATTERN):
        self.merges: list[Pair] = [(int(a), int(b)) for a, b in merges]
        for i, (a, b) in enumerate(self.merges):
            if not (0 <= a < BYTES + i and 0 <= b < BYTES + i):
                raise ValueError(f"merge {i} joins ids ({a}, {b}), which do not exist before it")
        self.pattern = pattern
        self.tokens = _token_bytes(self.merges)
        if len(set(self.tokens)) != len(self.tokens):
            raise ValueError("two merges make the same bytes")
        self.specials = {name: len(self.tokens) + i for i, name in enumerate(SPECIALS)}
        self.never_sampled = tuple(self.specials.values())  # encode never yields them: untrained rows
        try:
            self._enc = tiktoken.Encoding(
                name="scratchgpt-bpe",
                pat_str=pattern,
                mergeable_ranks={b: i for i, b in enumerate(self.tokens)},
                special_tokens=self.specials,
            )
        except ValueError as e:  # tiktoken's regex compiler refused the pattern
            raise ValueError(f"pattern does not compile: {e}") from None

    @classmethod
    def fit(
        cls, chunks: Iterable[str], *, vocab_size: int | None = None, on_merge: OnMerge | None = None
    ) -> LearnedBPETokenizer:
        """Merges learned from the text, vocab_size ids in all (bytes, merges, specials) or fewer if it runs out."""
        vocab_size = DEFAULT_VOCAB_SIZE if vocab_size is None else vocab_size
        floor = BYTES + len(SPECIALS)
        if vocab_size <= floor:
            raise ScratchGPTError(
                f"a BPE vocabulary needs more than {floor} ids ({BYTES} bytes and {ENDOFTEXT}); "
                f"pass --vocab-size {DEFAULT_VOCAB_SIZE}, say"
            )
        counts = count_chunks(chunks)
        if not counts:
            raise ScratchGPTError("the text is empty: a BPE vocabulary is learned from text; give it a corpus")
        return cls(learn_merges(counts, vocab_size - floor, on_merge))

    @classmethod
    def from_spec(cls, spec: dict) -> LearnedBPETokenizer:
        check_spec(spec, "bpe", {"pattern": str, "merges": list, "specials": dict})
        merges = spec["merges"]
        if not all(isinstance(m, list) and len(m) == 2 and all(type(i) is int for i in m) for m in merges):
            raise ScratchGPTError("bpe tokenizer spec's 'merges' must be pairs of ids; the file is damaged")
        try:
            tokenizer = cls(merges, spec["pattern"])
        except ValueError as e:
            raise ScratchGPTError(f"bpe tokenizer spec is invalid: {e}; the file is damaged") from None
        if spec["specials"] != tokenizer.specials:
            raise ScratchGPTError(
                f"bpe tokenizer spec's specials {spec['specials']} do not follow its {len(merges)} merges "
                f"({tokenizer.specials}); the file is damaged"
            )
        return tokenizer

    def spec(self) -> dict:
        return {
            "name": self.name,
            "version": SPEC_VERSION,
            "pattern": self.pattern,
            "merges": [list(m) for m in self.merges],
            "specials": dict(self.specials),
        }

    @property
    def vocab_size(self) -> int:
        return len(self.tokens) + len(self.specials)

    def encode_array(self, text: str) -> np.ndarray:
        return np.array(self._enc.encode_ordinary(replace_lone_surrogates(text)), dtype=np.int64)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        texts = [replace_lone_surrogates(t) for t in texts]
        return [np.array(ids, dtype=np.int64) for ids in self._enc.encode_ordinary_batch(texts)]

    def encode(self, text: str) -> list[int]:
        return self._enc.encode_ordinary(replace_lone_surrogates(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self._enc.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        return self._enc.decode_single_token_bytes(token_id)

    def unknown(self, text: str) -> list[str]:
        """The lone surrogates of text, read as U+FFFD: byte-level BPE represents every other string exactly."""
        return lone_surrogates(text)

    def reference_encode(self, text: str) -> list[int]:
        """The ids tiktoken gives, computed in plain Python: in each chunk, merge the adjacent pair whose
        bytes have the lowest rank (leftmost first) until no adjacent pair is a token."""
        out: list[int] = []
        for chunk in regex.findall(self.pattern, replace_lone_surrogates(text)):
            parts = [bytes([b]) for b in chunk.encode("utf-8")]
            while True:
                joins = [(self._rank[a + b], i) for i, (a, b) in enumerate(pairwise(parts)) if a + b in self._rank]
                if not joins:
                    break
                _, i = min(joins)  # the lowest rank, leftmost among equals
                parts[i : i + 2] = [parts[i] + parts[i + 1]]
            out += [self._rank[p] for p in parts]
        return out

    @functools.cached_property
    def _rank(self) -> dict[bytes, int]:
        return {b: i for i, b in enumerate(self.tokens)}


def save_tokenizer(tokenizer: LearnedBPETokenizer, path: Path) -> None:
    """Write the tokenizer's spec as JSON, atomically (a reader never sees half a file)."""
    atomic_write_bytes(Path(path), (json.dumps(tokenizer.spec(), indent=1) + "\n").encode("utf-8"))


def load_tokenizer_file(path: Path) -> LearnedBPETokenizer:
    """The tokenizer a JSON file from save_tokenizer holds; a damaged file is one line, never half-loaded."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScratchGPTError(f"no tokenizer file {path}; make one with: scratchgpt tokenizer train CORPUS") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        problem = f"{type(e).__name__}: {e}"
        raise ScratchGPTError(f"{path} is not a tokenizer file ({problem}); the file is damaged") from None
    if not isinstance(spec, dict) or spec.get("name") != "bpe":
        raise ScratchGPTError(f'{path} is not a learned BPE tokenizer file (no "name": "bpe"); the file is damaged')
    return LearnedBPETokenizer.from_spec(spec)
