"""The BPE trainer (tokenizers/learned.py): the worked example, the incremental counts against a plain
recount, tiktoken against the reference encoder, determinism, and damaged files."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.tokenizers import tokenizer_from_spec
from scratchgpt.tokenizers.learned import (
    ENDOFTEXT,
    LearnedBPETokenizer,
    count_chunks,
    learn_merges,
    load_tokenizer_file,
    merged,
    save_tokenizer,
)

RANDOM_TEXT = st.text(alphabet=st.one_of(st.characters(codec="utf-8"), st.sampled_from("ae ,.\n'éこ🦄12345")))


def recounted_merges(chunk_counts: Counter[str], n_merges: int) -> list[tuple[int, int]]:
    """The merges a trainer that recounts every pair at every step learns (minbpe's way): the reference."""
    chunks = {tuple(c.encode("utf-8")): n for c, n in chunk_counts.items()}
    merges: list[tuple[int, int]] = []
    while len(merges) < n_merges:
        counts: Counter[tuple[int, int]] = Counter()
        for ids, n in chunks.items():
            for pair in zip(ids, ids[1:], strict=False):
                counts[pair] += n
        if not counts:
            break
        top = max(counts.values())
        pair = min(p for p, n in counts.items() if n == top)
        new_id = 256 + len(merges)
        merges.append(pair)
        regrouped: Counter[tuple[int, ...]] = Counter()
        for ids, n in chunks.items():
            regrouped[tuple(merged(list(ids), pair, new_id))] += n
        chunks = dict(regrouped)
    return merges


def test_the_worked_example_gives_the_textbook_merges():
    # "aaabdaaabac": aa -> Z, then ab -> Y (a tie with Za, broken toward the smaller pair), then ZY -> X
    tokenizer = LearnedBPETokenizer.fit(["aaabdaaabac"], vocab_size=256 + 3 + 1)
    assert tokenizer.merges == [(97, 97), (97, 98), (256, 257)]
    assert tokenizer.tokens[256:] == [b"aa", b"ab", b"aaab"]
    assert tokenizer.encode("aaabdaaabac") == [258, ord("d"), 258, ord("a"), ord("c")]


def test_incremental_pair_counts_learn_what_a_full_recount_learns(shakespeare_text):
    counts = count_chunks([shakespeare_text[:30_000]])
    assert learn_merges(counts, 300) == recounted_merges(counts, 300)


def test_tiktoken_gives_the_reference_encoders_ids_on_the_corpus(bpe_shakespeare, shakespeare_text):
    text = shakespeare_text[-40_000:]  # past the text it was learned from
    assert bpe_shakespeare.encode(text) == bpe_shakespeare.reference_encode(text)
    assert bpe_shakespeare.encode_batch([text])[0].tolist() == bpe_shakespeare.encode(text)


@settings(max_examples=100, deadline=None, database=None)
@given(text=RANDOM_TEXT)
def test_tiktoken_gives_the_reference_encoders_ids_on_any_text(bpe_shakespeare, text):
    assert bpe_shakespeare.encode(text) == bpe_shakespeare.reference_encode(text)
    assert bpe_shakespeare.decode(bpe_shakespeare.encode(text)) == text


def test_learned_twice_the_files_are_byte_identical(tmp_path, shakespeare_text):
    for name in ("a.json", "b.json"):
        save_tokenizer(LearnedBPETokenizer.fit([shakespeare_text[:50_000]], vocab_size=600), tmp_path / name)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert load_tokenizer_file(tmp_path / "a.json").spec() == json.loads((tmp_path / "a.json").read_text())


def test_endoftext_typed_as_text_is_text_and_never_sampled(bpe_shakespeare):
    eot = bpe_shakespeare.specials[ENDOFTEXT]
    assert eot == bpe_shakespeare.vocab_size - 1
    ids = bpe_shakespeare.encode(f"a{ENDOFTEXT}b")
    assert eot not in ids and bpe_shakespeare.decode(ids) == f"a{ENDOFTEXT}b"
    assert bpe_shakespeare.never_sampled == (eot,)
    assert bpe_shakespeare.token_bytes(eot) == ENDOFTEXT.encode()


def test_a_vocabulary_larger_than_the_text_supplies_stops_where_pairs_run_out():
    tokenizer = LearnedBPETokenizer.fit(["abcabc"], vocab_size=5000)
    assert tokenizer.tokens[256:] == [b"ab", b"abc", b"abcabc"]  # one chunk: then no pair is left
    assert tokenizer.vocab_size == 256 + 3 + 1


@pytest.mark.parametrize(("texts", "size", "match"), [(["abc"], 257, "more than 257 ids"), ([""], 300, "empty")])
def test_a_vocabulary_too_small_or_a_text_empty_is_one_line(texts, size, match):
    with pytest.raises(ScratchGPTError, match=match):
        LearnedBPETokenizer.fit(texts, vocab_size=size)


def _damaged(spec: dict) -> list[tuple[str, object]]:
    merges = spec["merges"]
    return [
        ("a merge of an id made later", {**spec, "merges": [[300, 97]] + merges[1:]}),
        ("a merge that is no pair", {**spec, "merges": [[97]] + merges[1:]}),
        ("two merges making the same bytes", {**spec, "merges": merges + [merges[0]], "specials": spec["specials"]}),
        ("specials that do not follow the merges", {**spec, "specials": {ENDOFTEXT: 5}}),
        ("a pattern that does not compile", {**spec, "pattern": "(unclosed"}),
        ("a newer version", {**spec, "version": 99}),
    ]


def test_a_damaged_or_hand_edited_spec_is_refused_in_one_line(bpe_shakespeare):
    for what, spec in _damaged(bpe_shakespeare.spec()):
        with pytest.raises(ScratchGPTError, match="damaged|upgrade") as e:
            tokenizer_from_spec(spec)
        assert "\n" not in str(e.value), what


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b'{"name": "bpe", "version": 1, "merges": [[97', "not a tokenizer file"),
        (b"\xff\xfe", "not a tokenizer file"),
        (b'{"name": "char", "version": 1, "chars": "ab"}', "not a learned BPE"),
        (b"[" * 5000 + b"]" * 5000, "not a"),
    ],
)
def test_a_truncated_or_foreign_file_never_loads(tmp_path, content, match):
    path = tmp_path / "tok.json"
    path.write_bytes(content)
    with pytest.raises(ScratchGPTError, match=match):
        load_tokenizer_file(path)
