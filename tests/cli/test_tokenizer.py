"""`scratchgpt tokenizer train|show`, and `scratchgpt train` on a learned vocabulary (--tokenizer bpe | FILE)."""

from __future__ import annotations

import json

import pytest

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.core import paths
from scratchgpt.model.checkpoint import load_checkpoint
from scratchgpt.tokenizers.learned import load_tokenizer_file

TINY = (
    "--n-layer 1 --n-embd 16 --n-head 2 --block-size 16 --batch-size 2 --max-iters 1 --eval-iters 1 --eval-interval 1"
).split()


def scratchgpt(capsys, *argv):
    code = run_entry_point(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def text_file(tmp_path, shakespeare_text):
    path = tmp_path / "plays.txt"
    path.write_text(shakespeare_text[:60_000], encoding="utf-8")
    return path


def test_tokenizer_train_writes_a_file_show_reads_it_and_an_existing_file_is_kept(capsys, tmp_path, text_file):
    out = tmp_path / "tok.json"
    code, stdout, err = scratchgpt(
        capsys, "tokenizer", "train", str(text_file), "--vocab-size", "400", "--out", str(out)
    )
    assert code == 0, err
    assert "learned 143 merges" in stdout and f"--tokenizer {out}" in stdout
    tokenizer = load_tokenizer_file(out)
    assert tokenizer.vocab_size == 400
    before = out.read_bytes()
    code, _, err = scratchgpt(capsys, "tokenizer", "train", str(text_file), "--out", str(out))
    assert code == 1 and "exists; pass --overwrite" in err and out.read_bytes() == before
    code, stdout, _ = scratchgpt(
        capsys, "tokenizer", "show", str(out), "-p", "To be, or not", "--ids", "--corpus", str(text_file)
    )
    assert code == 0
    assert "first merges: #1 " in stdout and "last merges:" in stdout
    ids = tokenizer.encode("To be, or not")
    assert f"{len(ids)} tokens" in stdout and all(f"[{i}]" in stdout for i in ids)
    assert "·be" in stdout or "·or" in stdout  # spaces made visible
    for name in ("this (bpe, 400 ids)", "char", "word", "GPT-2 BPE"):
        assert name in stdout


def test_train_learns_a_bpe_on_the_fly_caches_it_and_the_checkpoint_carries_it(capsys, tmp_path, text_file):
    ckpt_path = tmp_path / "m.safetensors"
    args = ["train", "--corpus", str(text_file), "--tokenizer", "bpe", "--vocab-size", "300", *TINY]
    code, _, err = scratchgpt(capsys, *args, "--out", str(ckpt_path))
    assert code == 0, err
    cached = list((paths.cache_dir() / "tokenizers").glob("*-bpe300-*.json"))
    assert len(cached) == 1
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt.tokenizer.spec() == json.loads(cached[0].read_text())
    assert ckpt.model.config.vocab_size == 300
    # the validation split (the last 10%) is not what the merges were learned from: learning again from the first
    # 90% gives the same merges
    text = text_file.read_text()
    from scratchgpt.tokenizers.learned import LearnedBPETokenizer

    assert LearnedBPETokenizer.fit([text[: int(0.9 * len(text))]], vocab_size=300).merges == ckpt.tokenizer.merges


def test_train_on_a_tokenizer_file_and_the_flags_that_do_not_fit_it(capsys, tmp_path, text_file):
    tok = tmp_path / "tok.json"
    assert scratchgpt(capsys, "tokenizer", "train", str(text_file), "--vocab-size", "320", "--out", str(tok))[0] == 0
    ckpt_path = tmp_path / "m.safetensors"
    code, _, err = scratchgpt(
        capsys, "train", "--corpus", str(text_file), "--tokenizer", str(tok), *TINY, "--out", str(ckpt_path)
    )
    assert code == 0, err
    assert load_checkpoint(ckpt_path).tokenizer.spec() == load_tokenizer_file(tok).spec()
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--corpus",
        str(text_file),
        "--tokenizer",
        str(tok),
        "--vocab-size",
        "500",
        *TINY,
        "--out",
        str(tmp_path / "n.safetensors"),
    )
    assert code == 1 and "--vocab-size does not apply to a tokenizer file" in err
    with pytest.raises(SystemExit) as usage:
        scratchgpt(capsys, "train", "--tokenizer", "bep")
    assert usage.value.code == 2 and "did you mean 'bpe'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["train", "{text}", "--vocab-size", "257", "--out", "{out}"], "from 258"),
        (["train", "{empty}", "--out", "{out}"], "empty"),
        (["show", "{missing}"], "no file"),
        (["show", "{damaged}"], "damaged"),
    ],
)
def test_odd_input_is_one_line(capsys, tmp_path, text_file, argv, words):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "damaged.json").write_text('{"name": "bpe", "version": 1, "pattern": "x", "merges": [[1,')
    names = {
        "text": text_file,
        "empty": tmp_path / "empty.txt",
        "missing": tmp_path / "nope.safetensors",
        "damaged": tmp_path / "damaged.json",
        "out": tmp_path / "t.json",
    }
    argv = [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]
    try:
        code, _, err = scratchgpt(capsys, "tokenizer", *argv)
    except SystemExit as usage:  # a flag's bound, as argparse reports it
        code, err = usage.code, capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and words in err, err


def test_a_tokenizer_file_beside_a_checkpoint_with_another_vocabulary_is_one_line(capsys, tmp_path, text_file):
    from scratchgpt.model.checkpoint import shipped_checkpoint

    tok = tmp_path / "tok.json"
    assert scratchgpt(capsys, "tokenizer", "train", str(text_file), "--vocab-size", "300", "--out", str(tok))[0] == 0
    out = tmp_path / "ft.safetensors"
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--init-from",
        str(shipped_checkpoint("char")),
        "--tokenizer",
        str(tok),
        "--max-iters",
        "1",
        "--out",
        str(out),
    )
    assert code == 1 and "has its own char vocabulary" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
