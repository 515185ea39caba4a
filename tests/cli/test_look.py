"""`scratchgpt sample --logprobs --json`, `score` and `inspect` as a user meets them, on a tiny checkpoint:
OpenAI's field names, the numbers eval gives, one-line errors for odd input."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
import torch

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.data import load_tokens, resolve_corpus, split_tokens
from scratchgpt.model.checkpoint import load_checkpoint, save_checkpoint
from scratchgpt.model.evaluate import evaluate_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.inspection import score_ids
from scratchgpt.tokenizers import fit_tokenizer


def scratchgpt(capsys, *argv):
    try:
        code = run_entry_point(main, list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, out, err, *words):
    assert code != 0 and out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shakespeare_text):
    path = tmp_path_factory.mktemp("corpus") / "tiny.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


def save_tiny(folder, corpus, name, arch="gpt", seed=0):
    corpus_record = resolve_corpus(corpus)
    tokenizer = fit_tokenizer("char", [corpus.read_text(encoding="utf-8")])
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16, arch=arch)
    record = {"name": corpus_record.name, "sha256": corpus_record.sha256, "source": str(corpus)}
    return save_checkpoint(folder / name, build_model(config), tokenizer, corpus=record, provenance={"step": 0})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, corpus):
    return str(save_tiny(tmp_path_factory.mktemp("ckpt"), corpus, "a.safetensors"))


@pytest.fixture(scope="module")
def other(tmp_path_factory, corpus):
    return str(save_tiny(tmp_path_factory.mktemp("ckpt"), corpus, "b.safetensors", seed=1))


@pytest.fixture(scope="module")
def bigram(tmp_path_factory, corpus):
    return str(save_tiny(tmp_path_factory.mktemp("ckpt"), corpus, "bigram.safetensors", arch="bigram"))


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("ROMEO:\nBut soft, what light", encoding="utf-8")
    return str(path)


def test_sample_json_has_openais_fields_and_its_tokens_join_to_the_text(capsys, ckpt):
    code, out, err = scratchgpt(
        capsys, "sample", ckpt, "-p", "ROMEO:", "--len", "12", "--seed", "2", "--logprobs", "3", "--json"
    )
    assert code == 0, err
    result = json.loads(out)
    content = result["logprobs"]["content"]
    assert "".join(c["token"] for c in content) == result["text"] and len(content) == 12
    for c in content:
        assert set(c) == {"token", "id", "logprob", "bytes", "top_logprobs"} and c["logprob"] <= 0
        assert bytes(c["bytes"]).decode() == c["token"] and len(c["top_logprobs"]) == 3
        assert set(c["top_logprobs"][0]) == {"token", "id", "logprob", "bytes"}


def test_sample_json_without_logprobs_has_null_logprobs(capsys, ckpt):
    code, out, _ = scratchgpt(capsys, "sample", ckpt, "--len", "4", "--json")
    assert code == 0 and json.loads(out)["logprobs"] is None


def test_sample_logprobs_piped_prints_plain_text_and_the_legend(capsys, ckpt):
    code, out, err = scratchgpt(capsys, "sample", ckpt, "-p", "ROMEO:", "--len", "8", "--logprobs", "0")
    assert code == 0, err
    assert out.startswith("ROMEO:") and "probability:" in out and "\x1b" not in out


@pytest.mark.parametrize("value", ["50", "21", "-1"])
def test_sample_logprobs_out_of_range_is_one_line_and_exit_2(capsys, ckpt, value):
    code, out, err = scratchgpt(capsys, "sample", ckpt, "--logprobs", value, "--json")
    one_line_error(code, out, err, "--logprobs", "0 to 20")
    assert code == 2


def test_score_json_tokens_and_rates_agree(capsys, ckpt, text_file):
    code, out, err = scratchgpt(capsys, "score", ckpt, text_file, "--json", "--top", "2")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"tokens", "nats_per_char", "bits_per_char", "perplexity"}
    tokens = result["tokens"]
    assert tokens[0]["logprob"] is None and tokens[0]["top_logprobs"] == []
    assert "".join(t["token"] for t in tokens) == "ROMEO:\nBut soft, what light"
    nats = -sum(t["logprob"] for t in tokens[1:])
    assert result["nats_per_char"] == pytest.approx(nats / (len(tokens) - 1))
    assert result["bits_per_char"] == pytest.approx(result["nats_per_char"] / math.log(2))


def test_score_reads_standard_input_and_shows_a_summary(capsys, ckpt, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("ROMEO:\nBut soft"))
    code, out, err = scratchgpt(capsys, "score", ckpt, "-")
    assert code == 0, err
    assert out.startswith("ROMEO:\nBut soft\n") and "bits/char" in out and "most surprising" in out


def test_score_of_a_long_text_says_it_slides_a_window(capsys, ckpt, tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("To be, or not to be, that is the question.\n" * 2, encoding="utf-8")
    code, out, err = scratchgpt(capsys, "score", ckpt, str(path), "--json")
    assert code == 0 and "windows 11 apart" in err and "at least 5 tokens of context" in err
    assert len(json.loads(out)["tokens"]) == 86  # one per character


def test_score_against_another_model_lists_where_they_disagree(capsys, ckpt, other, text_file):
    code, out, err = scratchgpt(capsys, "score", ckpt, text_file, "--against", other, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert set(result) == {"score", "against", "disagreements"} and len(result["disagreements"]) == 5
    code, out, _ = scratchgpt(capsys, "score", ckpt, text_file, "--against", other)
    assert code == 0 and "where they disagree most" in out


def test_score_notes_what_the_vocabulary_lacks_and_against_a_grown_one_names_it(capsys, ckpt, tmp_path):
    grown_corpus = tmp_path / "fr.txt"
    grown_corpus.write_text("Il était une fois, café.\n" * 50, encoding="utf-8")
    grown = str(save_tiny(tmp_path, grown_corpus, "grown.safetensors"))
    text = tmp_path / "t.txt"
    text.write_text("ROMEO: un café", encoding="utf-8")
    code, _, err = scratchgpt(capsys, "score", ckpt, str(text), "--json")
    assert code == 0 and "note: not in this model's char vocabulary, so they are approximated or dropped: 'é'" in err
    code, out, err = scratchgpt(capsys, "score", ckpt, str(text), "--against", grown)
    note, error = err.splitlines()  # the note above, then the error in one line
    assert code == 1 and out == "" and note.startswith("note: ") and "Traceback" not in err
    assert "different tokens" in error and f"{ckpt} lacks 'é'" in error


def test_score_on_the_validation_split_agrees_with_eval(ckpt):
    """With eval's own windows (stride = the context) the sums are the same, within fp32 summing order;
    score's default stride gives every token more context, so a lower loss on a trained model (not
    asserted here: this one is random; bench/inspect_speed.py prints both on the shipped model)."""
    loaded = load_checkpoint(ckpt)
    corpus = resolve_corpus(loaded.corpus["source"])
    _, val = split_tokens(load_tokens(corpus, loaded.tokenizer))
    records = score_ids(loaded.model, np.asarray(val), stride=loaded.config.block_size)
    chars = len(loaded.tokenizer.decode(val[1:].tolist()))
    result = evaluate_checkpoint(ckpt)
    assert -sum(r.logprob for r in records) / chars == pytest.approx(result["val_nats_per_char"], rel=1e-5)


@pytest.mark.parametrize(
    "content, words",
    [
        (None, ["no file at"]),
        (b"\xff\xfe", ["not UTF-8"]),
        (b"R", ["1 token", "at least two"]),
        ("dir", ["is a directory"]),
    ],
)
def test_score_of_a_missing_binary_or_one_token_file_is_one_line(capsys, ckpt, tmp_path, content, words):
    path = tmp_path / "x.txt"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    one_line_error(*scratchgpt(capsys, "score", ckpt, str(path)), *words)


def test_inspect_prints_each_heads_top_tokens_and_the_lens(capsys, ckpt):
    code, out, err = scratchgpt(capsys, "inspect", ckpt, "-p", "ROMEO:\nBut")
    assert code == 0, err
    assert "where the last position (|t|, token 10) looks" in out
    heads = [line for line in out.splitlines() if line.startswith(("L0 H", "L1 H"))]
    assert len(heads) == 4 and all(line.count("@") == 5 for line in heads)  # five tokens per head
    assert "the logit lens" in out and " embed " in out and "L1 out" in out


def test_inspect_json_has_a_row_per_layer_head_and_position(capsys, ckpt, tmp_path):
    png = tmp_path / "att.png"
    code, out, err = scratchgpt(capsys, "inspect", ckpt, "-p", "ROMEO", "--json", "--png", str(png))
    assert code == 0, err
    result = json.loads(out)
    assert np.array(result["attention"]).shape == (2, 2, 5) and len(result["lens"]) == 3
    assert np.allclose(np.array(result["attention"]).sum(-1), 1, atol=1e-5)
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "argv, words",
    [
        (["-p", ""], ["empty"]),
        (["-p", "x" * 17], ["17 tokens", "window of 16"]),
        (["-p", "ROMEO", "--layer", "99"], ["2 layers", "0 to 1"]),
    ],
)
def test_inspect_odd_input_is_one_line_and_exit_1(capsys, ckpt, argv, words):
    code, out, err = scratchgpt(capsys, "inspect", ckpt, *argv)
    one_line_error(code, out, err, *words)
    assert code == 1


def test_inspect_on_the_bigram_says_it_has_no_attention(capsys, bigram, text_file):
    one_line_error(*scratchgpt(capsys, "inspect", bigram, "-p", "ROMEO"), "bigram", "no attention")
    code, out, err = scratchgpt(capsys, "score", bigram, text_file, "--json")  # scoring applies to it
    assert code == 0 and json.loads(out)["perplexity"] > 1, err
