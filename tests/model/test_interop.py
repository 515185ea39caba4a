"""Hugging Face GPT-2 and nanoGPT models imported into our GPT, and GPT-2-layout models exported back,
held to transformers' own GPT2LMHeadModel (a tiny random one; nothing is downloaded)."""

from __future__ import annotations

import json
import os
import pickle
import shutil

import pytest
import torch

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.checkpoint import Checkpoint
from scratchgpt.model.engine import Engine
from scratchgpt.model.gpt import GPT2_LAYOUT, GPTConfig, build_model
from scratchgpt.model.interop import export_hf, import_model, open_model, read_meta_pkl
from scratchgpt.tokenizers import CharTokenizer, TiktokenTokenizer

IDS = [[464, 2068, 7586, 21831, 50256, 11, 290, 262]]
CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # nanoGPT's shakespeare_char: 65


def logits_of(model, ids=IDS):
    with torch.no_grad():
        out = model(torch.tensor(ids))
    return out.logits if hasattr(out, "logits") else out[0]


def hf_greedy(hf, ids, n):
    ids = torch.tensor(ids)
    out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0, ids.shape[1] :].tolist()


def nanogpt_checkpoint(hf, path, *, vocab_size=None, compiled=True, dataset=None, **extra_args):
    """hf's weights as nanoGPT's train.py saves them: Linear (out, in) weights, `_orig_mod.` keys
    when compiled, the token embedding padded to vocab_size rows and shared with the LM head."""
    state = {}
    for key, tensor in hf.state_dict().items():
        if key.endswith((".attn.bias", ".attn.masked_bias")) or key == "lm_head.weight":
            continue
        conv1d = key.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight"))
        state[key] = tensor.t().contiguous() if conv1d else tensor.clone()
    wte = state["transformer.wte.weight"]
    if vocab_size and vocab_size > wte.shape[0]:
        wte = torch.cat([wte, torch.randn(vocab_size - wte.shape[0], wte.shape[1])])
    state["transformer.wte.weight"] = state["lm_head.weight"] = wte  # tied: one tensor
    prefix = "_orig_mod." if compiled else ""
    c = hf.config
    model_args = dict(
        n_layer=c.n_layer,
        n_head=c.n_head,
        n_embd=c.n_embd,
        block_size=c.n_positions,
        bias=True,
        vocab_size=wte.shape[0],
        dropout=0.0,
        **extra_args,
    )
    saved = {
        "model": {prefix + k: v for k, v in state.items()},
        "model_args": model_args,
        "iter_num": 5000,
        "best_val_loss": torch.tensor(1.47),
        "config": {"dataset": dataset, "batch_size": 64},
    }
    torch.save(saved, path)
    return path


@pytest.fixture(scope="module")
def hf_gpt2(make_hf_gpt2):
    return make_hf_gpt2("gpt2")


@pytest.fixture(scope="module")
def hf_exact_gelu(make_hf_gpt2):
    """A GPT-2 with nanoGPT's exact GELU, so a nanoGPT checkpoint of its weights computes the same."""
    return make_hf_gpt2("gpt2-exact-gelu", activation_function="gelu")


def test_hf_gpt2_import_gives_transformers_logits_within_1e_4(hf_gpt2):
    hf, folder = hf_gpt2
    for source in (folder, folder / "model.safetensors"):
        ckpt = import_model(source)
        assert ckpt.tokenizer.vocab_size == 50257 and not ckpt.tokenizer.compact
        assert ckpt.config.activation == "gelu_tanh" and ckpt.config.tie_embeddings
        torch.testing.assert_close(logits_of(ckpt.model), logits_of(hf), atol=1e-4, rtol=0)


def test_hf_gpt2_import_greedy_tokens_equal_transformers_generate(hf_gpt2):
    hf, folder = hf_gpt2
    model = import_model(folder).model
    expected = hf_greedy(hf, IDS, 20)
    assert model.generate(torch.tensor(IDS), 20, temperature=0)[0, len(IDS[0]) :].tolist() == expected
    assert list(Engine(model).generate(IDS[0], max_new_tokens=20, temperature=0)) == expected


def test_kv_cache_engine_matches_full_forward_on_an_imported_model(hf_gpt2):
    model = import_model(hf_gpt2[1]).model
    engine = Engine(model)
    for _ in engine.generate(IDS[0], max_new_tokens=40, temperature=1.0, generator=torch.Generator().manual_seed(0)):
        window = engine.cache.tokens  # past block_size the window slides: the cache is rebuilt
        torch.testing.assert_close(engine._last_logits[0], logits_of(model, [window])[0, -1], atol=1e-4, rtol=0)


def test_open_model_imports_in_memory_and_says_so_in_one_line(hf_gpt2, tmp_path):
    ckpt, note = open_model(hf_gpt2[1])
    assert note.startswith(f"imported {hf_gpt2[1]} (Hugging Face GPT-2") and "\n" not in note
    assert "scratchgpt import" in note
    from scratchgpt.model.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "ours.safetensors", ckpt.model, ckpt.tokenizer, provenance=ckpt.provenance)
    again, note = open_model(tmp_path / "ours.safetensors")  # our own format: loaded, not imported
    assert note is None
    torch.testing.assert_close(logits_of(again.model.eval()), logits_of(ckpt.model), atol=0, rtol=0)


def test_nanogpt_checkpoint_of_the_same_weights_gives_the_hf_import_logits(hf_exact_gelu, tmp_path):
    hf, folder = hf_exact_gelu
    path = nanogpt_checkpoint(hf, tmp_path / "ckpt.pt", vocab_size=50304)  # nanoGPT pads GPT-2's vocabulary
    ckpt = import_model(path)
    assert isinstance(ckpt.tokenizer, TiktokenTokenizer) and ckpt.config.vocab_size == 50257  # padding trimmed
    assert ckpt.config.activation == "gelu" and ckpt.provenance["step"] == 5000
    torch.testing.assert_close(logits_of(ckpt.model), logits_of(import_model(folder).model), atol=1e-5, rtol=0)
    torch.testing.assert_close(logits_of(ckpt.model), logits_of(hf), atol=1e-4, rtol=0)
    assert import_model(tmp_path).config == ckpt.config  # nanoGPT's out_dir holding ckpt.pt


@pytest.mark.parametrize("where", ["beside", "data/<dataset>/ of the working directory", "--meta"])
def test_nanogpt_char_checkpoint_takes_its_vocabulary_from_meta_pkl(make_hf_gpt2, tmp_path, monkeypatch, where):
    hf, _ = make_hf_gpt2("char-gpt", vocab_size=len(CHARS), activation_function="gelu")
    run = tmp_path / "out-shakespeare-char"
    run.mkdir()
    path = nanogpt_checkpoint(hf, run / "ckpt.pt", dataset="shakespeare_char")
    meta_dir = {"beside": run, "--meta": tmp_path / "elsewhere"}.get(where, tmp_path / "data" / "shakespeare_char")
    meta_dir.mkdir(parents=True, exist_ok=True)
    meta = {"vocab_size": len(CHARS), "itos": dict(enumerate(CHARS)), "stoi": {c: i for i, c in enumerate(CHARS)}}
    (meta_dir / "meta.pkl").write_bytes(pickle.dumps(meta))
    monkeypatch.chdir(tmp_path)
    ckpt = import_model(path, meta=meta_dir / "meta.pkl" if where == "--meta" else None)
    assert isinstance(ckpt.tokenizer, CharTokenizer) and ckpt.tokenizer.chars == CHARS
    ids = [ckpt.tokenizer.encode("ROMEO:\nO, she doth")]
    torch.testing.assert_close(logits_of(ckpt.model, ids), logits_of(hf, ids), atol=1e-4, rtol=0)


class Payload:
    """A pickle that runs code when loaded: what a restricted unpickler must never let through."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_meta_pkl_needing_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps({"itos": Payload(marker)}))
    with pytest.raises(ScratchGPTError, match=r"needs code to unpickle \((posix|os)\.system\)") as e:
        read_meta_pkl(tmp_path / "meta.pkl")
    assert not marker.exists() and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "meta", [{"itos": {0: "a"}, "scale": 1.5}, {"itos": ("a", "b")}, [1, 2]], ids=["float", "tuple", "not-a-dict"]
)
def test_a_meta_pkl_of_anything_but_dicts_lists_strings_and_ints_is_refused(tmp_path, meta):
    (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    with pytest.raises(ScratchGPTError, match="dicts, lists, strings and ints"):
        read_meta_pkl(tmp_path / "meta.pkl")


def test_a_ckpt_pt_needing_code_is_refused_in_one_line(tmp_path):
    torch.save({"model": {}, "model_args": Payload(tmp_path / "ran")}, tmp_path / "ckpt.pt")
    with pytest.raises(ScratchGPTError, match=r"needs code to unpickle \((posix|os)\.system\).*weights_only") as e:
        import_model(tmp_path / "ckpt.pt")
    assert not (tmp_path / "ran").exists() and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "field, value",
    [
        ("scale_attn_by_inverse_layer_idx", True),
        ("activation_function", "relu"),
        ("n_inner", 100),
        ("layer_norm_epsilon", 1e-6),
        ("model_type", "llama"),
    ],
)
def test_hf_config_fields_we_cannot_honour_are_refused(hf_gpt2, tmp_path, field, value):
    folder = shutil.copytree(hf_gpt2[1], tmp_path / "edited")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, field: value}))
    with pytest.raises(ScratchGPTError, match=field if field != "model_type" else "not a GPT-2") as e:
        import_model(folder)
    assert "\n" not in str(e.value)


def test_nanogpt_model_args_we_cannot_honour_are_refused(hf_exact_gelu, tmp_path):
    path = nanogpt_checkpoint(hf_exact_gelu[0], tmp_path / "ckpt.pt", n_kv_head=2)
    with pytest.raises(ScratchGPTError, match=r"model_args has \['n_kv_head'\].*cannot honour"):
        import_model(path)


def test_weights_that_disagree_with_the_config_are_refused(hf_gpt2, tmp_path):
    folder = shutil.copytree(hf_gpt2[1], tmp_path / "edited")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "n_embd": 64}))
    with pytest.raises(ScratchGPTError, match=r"wte.weight is \(50257, 32\), config says \(50257, 64\)"):
        import_model(folder)


def test_hf_export_loads_in_transformers_with_the_same_greedy_tokens(tmp_path, transformers):
    torch.manual_seed(1)
    config = GPTConfig(vocab_size=50257, block_size=32, n_layer=2, n_head=2, n_embd=16, **GPT2_LAYOUT)
    model = build_model(config).eval()
    for p in model.parameters():  # trained weights are not all 0.02-small: spread the logits apart
        p.data.normal_(0, 0.3)
    export_hf(Checkpoint(model=model, tokenizer=TiktokenTokenizer()), tmp_path / "hf")
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    torch.testing.assert_close(logits_of(hf), logits_of(model), atol=1e-4, rtol=0)
    assert hf_greedy(hf, IDS, 20) == list(Engine(model).generate(IDS[0], max_new_tokens=20, temperature=0))
    assert import_model(tmp_path / "hf").config == config  # and back in, the same model


def test_an_imported_gpt2_exports_back_to_the_same_transformers_model(hf_gpt2, tmp_path, transformers):
    hf, folder = hf_gpt2
    export_hf(import_model(folder), tmp_path / "back")
    again = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "back").eval()
    torch.testing.assert_close(logits_of(again), logits_of(hf), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(), "rotary positions"),
        (dict(GPT2_LAYOUT, qk_norm=True), "normalised queries"),
        (dict(GPT2_LAYOUT, norm_bias=False), "without biases"),
        (dict(GPT2_LAYOUT, activation="relu2"), "relu2 MLP"),
    ],
)
def test_export_refuses_a_model_not_in_gpt2_layout_saying_why(tmp_path, change, reason):
    model = build_model(GPTConfig(vocab_size=50257, block_size=8, n_layer=1, n_head=2, n_embd=8, **change))
    with pytest.raises(ScratchGPTError, match=f"cannot be a Hugging Face GPT-2: .*{reason}"):
        export_hf(Checkpoint(model=model, tokenizer=TiktokenTokenizer()), tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_export_refuses_a_vocabulary_other_than_gpt2s_full_one(tmp_path):
    model = build_model(GPTConfig(vocab_size=3, block_size=8, n_layer=1, n_head=2, n_embd=8, **GPT2_LAYOUT))
    with pytest.raises(ScratchGPTError, match="its vocabulary is char of 3 tokens, not GPT-2's full 50,257"):
        export_hf(Checkpoint(model=model, tokenizer=CharTokenizer("abc")), tmp_path / "hf")


def test_export_never_writes_into_a_folder_that_holds_files(hf_gpt2, tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "notes.txt").write_text("mine")
    with pytest.raises(ScratchGPTError, match="not an empty folder"):
        export_hf(import_model(hf_gpt2[1]), tmp_path / "hf")
    assert os.listdir(tmp_path / "hf") == ["notes.txt"]


def test_a_source_that_is_missing_or_already_ours_is_not_imported(tmp_path):
    with pytest.raises(ScratchGPTError, match="does not exist; give a Hugging Face GPT-2 folder or a nanoGPT"):
        import_model(tmp_path / "gpt2")
    from scratchgpt.model.checkpoint import shipped_checkpoint

    with pytest.raises(ScratchGPTError, match="already a ScratchGPT checkpoint; use it as it is"):
        import_model(shipped_checkpoint("char"))
