from __future__ import annotations

import json
import os
import pickle
import stat

import pytest
import torch

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.checkpoint import checkpoint_metadata, load_checkpoint, load_tensors, save_checkpoint
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.tokenizers import fit_tokenizer


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(0)
    tokenizer = fit_tokenizer("char", ["hello world, what a day"])
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=16))
    path = save_checkpoint(
        tmp_path / "m.safetensors",
        model,
        tokenizer,
        corpus={"name": "tiny", "sha256": "ab" * 32, "source": "tiny.txt"},
        provenance={"step": 7, "val_loss": 1.5},
    )
    return path, model, tokenizer


@pytest.mark.parametrize("kw", [dict(), dict(tie_embeddings=True, rope=False), dict(arch="bigram")])
def test_checkpoint_round_trip_reproduces_logits_exactly(tmp_path, kw):
    torch.manual_seed(0)
    tokenizer = fit_tokenizer("char", ["abcdefg"])
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=2, n_head=2, n_embd=8, **kw)
    model = build_model(config).eval()
    path = save_checkpoint(tmp_path / "m.safetensors", model, tokenizer)
    loaded = load_checkpoint(path)
    x = torch.randint(0, tokenizer.vocab_size, (2, 8))
    assert torch.equal(loaded.model.eval()(x)[0], model(x)[0])
    assert loaded.tokenizer.spec() == tokenizer.spec()
    assert loaded.config == config


def test_metadata_holds_config_tokenizer_corpus_and_training_state(saved):
    path, model, tokenizer = saved
    meta = checkpoint_metadata(path)
    assert meta["config"] == model.config.to_dict()
    assert meta["tokenizer"] == tokenizer.spec()
    assert meta["corpus"]["name"] == "tiny"
    assert meta["train"] == {"step": 7, "val_loss": 1.5}


def test_an_average_saved_with_its_first_runs_loss_estimates_loads_without_them(saved, tmp_path):
    path, model, tokenizer = saved
    stale = {"step": 7, "train": 1.0, "val": 1.5, "val_loss": 1.5, "exported_from": ["a.safetensors", "b.safetensors"]}
    old = save_checkpoint(tmp_path / "avg.safetensors", model, tokenizer, provenance=stale)
    assert load_checkpoint(old).provenance == {"step": 7, "exported_from": ["a.safetensors", "b.safetensors"]}
    single = {**stale, "exported_from": "a.safetensors"}
    one = save_checkpoint(tmp_path / "one.safetensors", model, tokenizer, provenance=single)
    assert load_checkpoint(one).provenance["val_loss"] == 1.5  # an export of one run keeps its estimates


def test_save_is_atomic_and_leaves_no_temp_files(saved):
    path, model, tokenizer = saved
    save_checkpoint(path, model, tokenizer)
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]


def test_a_failed_save_keeps_the_previous_checkpoint(saved, monkeypatch):
    path, model, tokenizer = saved
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("os.fsync", disk_full)
    with pytest.raises(ScratchGPTError, match="No space left"):
        save_checkpoint(path, model, tokenizer)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.safetensors"]


def _corrupt(kind: str, good: bytes) -> bytes:
    if kind == "empty":
        return b""
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "random":
        return bytes(range(256)) * 40
    if kind == "pickle":
        return pickle.dumps({"weights": [1, 2, 3]})
    if kind == "huge_header":
        return (10**15).to_bytes(8, "little") + b"{}"
    if kind == "lying_offsets":
        header_len = int.from_bytes(good[:8], "little")
        header = json.loads(good[8 : 8 + header_len])
        name = next(k for k in header if k != "__metadata__")
        header[name]["data_offsets"][1] += 10**9
        raw = json.dumps(header).encode()
        return len(raw).to_bytes(8, "little") + raw + good[8 + header_len :]
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["empty", "truncated", "random", "pickle", "huge_header", "lying_offsets"])
def test_a_broken_checkpoint_is_one_clear_error(saved, tmp_path, kind):
    path, _, _ = saved
    bad = tmp_path / f"{kind}.safetensors"
    bad.write_bytes(_corrupt(kind, path.read_bytes()))
    with pytest.raises(ScratchGPTError) as e:
        load_checkpoint(bad)
    assert "\n" not in str(e.value) and str(bad) in str(e.value)


@pytest.mark.parametrize("text", ["ROMEO:\nBut soft!\n", "Il était une fois « Hélène »\n" * 5])
def test_a_text_file_given_as_a_checkpoint_is_called_a_text_file(tmp_path, text):
    notes = tmp_path / "notes.txt"
    notes.write_text(text, encoding="utf-8")
    with pytest.raises(ScratchGPTError, match="notes.txt is a text file, not a checkpoint.*--corpus"):
        load_checkpoint(notes)


def test_a_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(ScratchGPTError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.safetensors")


def test_metadata_from_a_newer_format_or_missing_fields_is_refused(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    path, _, _ = saved
    tensors = load_file(path)
    meta = dict(load_tensors(path)[1])
    for change, message in [({"format_version": "99"}, "newer"), ({"config": None}, "config")]:
        m = {**meta, **change}
        m = {k: v for k, v in m.items() if v is not None}
        target = tmp_path / "changed.safetensors"
        save_file(tensors, target, metadata=m)
        with pytest.raises(ScratchGPTError, match=message):
            load_checkpoint(target)


def test_a_config_that_does_not_match_the_weights_is_refused(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    path, model, _ = saved
    meta = dict(load_tensors(path)[1])
    meta["config"] = json.dumps({**model.config.to_dict(), "n_embd": 32})
    target = tmp_path / "mismatch.safetensors"
    save_file(load_file(path), target, metadata=meta)
    with pytest.raises(ScratchGPTError, match="do not match"):
        load_checkpoint(target)


def test_a_saved_checkpoint_gets_the_usual_file_mode(saved):
    path, _, _ = saved
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_a_config_claiming_a_huge_model_is_refused_before_allocating(saved, tmp_path):
    from safetensors.torch import load_file, save_file

    path, model, _ = saved
    meta = dict(load_tensors(path)[1])
    meta["config"] = json.dumps({**model.config.to_dict(), "n_embd": 65536, "n_head": 1, "n_layer": 1000})
    target = tmp_path / "huge.safetensors"
    save_file(load_file(path), target, metadata=meta)
    with pytest.raises(ScratchGPTError, match="far larger"):
        load_checkpoint(target)
