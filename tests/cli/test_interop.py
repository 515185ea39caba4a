"""`scratchgpt import`, `export --format hf`, `train --arch gpt2`, and sample/eval taking a Hugging Face
GPT-2 folder or a nanoGPT ckpt.pt directly, run as a user runs them (in this process)."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from scratchgpt.cli.common import run_entry_point
from scratchgpt.cli.main import main
from scratchgpt.model.checkpoint import load_checkpoint, shipped_checkpoint
from scratchgpt.model.interop import import_model


def scratchgpt(capsys, *argv) -> tuple[int, str, str]:
    """Run `scratchgpt ARGV`: (exit code, stdout, stderr)."""
    try:
        code = run_entry_point(main, [str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def logits_of(model, ids):
    with torch.no_grad():
        out = model.eval()(torch.tensor([ids]))
    return out.logits if hasattr(out, "logits") else out[0]


@pytest.fixture(scope="module")
def hf_gpt2(make_hf_gpt2):
    return make_hf_gpt2("gpt2")


@pytest.fixture
def small_corpus(tmp_path, shakespeare_text):
    path = tmp_path / "small.txt"
    path.write_text(shakespeare_text[:20_000], encoding="utf-8")
    return path


def test_import_writes_a_checkpoint_with_the_models_logits_and_never_replaces_a_file_unasked(capsys, hf_gpt2, tmp_path):
    hf, folder = hf_gpt2
    out = tmp_path / "gpt2.safetensors"
    code, stdout, err = scratchgpt(capsys, "import", folder, out)
    assert code == 0 and err == "" and "Hugging Face GPT-2" in stdout
    ckpt = load_checkpoint(out)
    assert ckpt.provenance["imported"]["from"] == str(folder) and ckpt.tokenizer.vocab_size == 50257
    ids = [464, 2068, 7586]
    torch.testing.assert_close(logits_of(ckpt.model, ids), logits_of(hf, ids), atol=1e-4, rtol=0)

    code, _, err = scratchgpt(capsys, "import", folder, out)
    assert code == 1 and err.count("\n") == 1 and "already holds a checkpoint" in err and "--force" in err
    assert scratchgpt(capsys, "import", folder, out, "--force", "--dtype", "bf16")[0] == 0
    assert load_checkpoint(out).model.wte.weight.dtype == torch.float32  # loads as fp32 from bf16 weights
    notes = out.with_name("notes.txt")
    notes.write_text("mine")
    code, _, err = scratchgpt(capsys, "import", folder, notes, "--force")  # --force replaces checkpoints only
    assert code == 1 and "is not a ScratchGPT checkpoint" in err and notes.read_text() == "mine"


def test_import_of_a_nanogpt_run_reads_meta_pkl_beside_its_ckpt(capsys, nanogpt_char_run, tmp_path):
    hf, run = nanogpt_char_run
    code, stdout, _ = scratchgpt(capsys, "import", run / "ckpt.pt", tmp_path / "char.safetensors")
    assert code == 0 and "nanoGPT" in stdout and "65 characters" in stdout
    ckpt = load_checkpoint(tmp_path / "char.safetensors")
    ids = ckpt.tokenizer.encode("ROMEO: O")
    itos = pickle.loads((run / "meta.pkl").read_bytes())["itos"]
    assert ckpt.tokenizer.chars == "".join(itos[i] for i in range(len(itos))) and ckpt.provenance["step"] == 10
    torch.testing.assert_close(logits_of(ckpt.model, ids), logits_of(hf, ids), atol=1e-4, rtol=0)


def test_sample_takes_a_hf_folder_directly_and_says_it_imported_it_in_one_line(capsys, hf_gpt2):
    hf, folder = hf_gpt2
    code, out, err = scratchgpt(capsys, "sample", folder, "--prompt", "The quick", "--len", "8", "--temp", "0")
    assert code == 0
    assert err.count("\n") == 1 and err.startswith(f"imported {folder} (Hugging Face GPT-2")
    tokenizer = import_model(folder).tokenizer
    ids = torch.tensor([tokenizer.encode("The quick")])
    greedy = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False, pad_token_id=0)
    assert out == "The quick" + tokenizer.decode(greedy[0, ids.shape[1] :].tolist()) + "\n"


def test_eval_takes_a_nanogpt_ckpt_directly(capsys, nanogpt_char_run, small_corpus):
    _, run = nanogpt_char_run
    code, out, err = scratchgpt(capsys, "eval", run / "ckpt.pt", "--corpus", small_corpus, "--json")
    assert code == 0 and err.startswith(f"imported {run / 'ckpt.pt'} (nanoGPT") and err.count("\n") == 1
    result = json.loads(out)
    assert result["tokenizer"] == "char" and result["vocab_size"] == 65 and result["val_nats_per_char"] > 0
    code, _, err = scratchgpt(capsys, "eval", run / "ckpt.pt")  # no corpus recorded: say what to pass
    assert code == 1 and "pass --corpus" in err


def test_trained_gpt2_layout_exports_to_a_folder_transformers_loads_with_the_same_greedy_tokens(
    capsys, small_corpus, tmp_path, transformers
):
    out = tmp_path / "run.safetensors"
    code, _, err = scratchgpt(
        capsys,
        "train",
        "--arch",
        "gpt2",
        "--tokenizer",
        "tiktoken",
        "--corpus",
        small_corpus,
        "--n-layer",
        "1",
        "--n-head",
        "2",
        "--n-embd",
        "16",
        "--block-size",
        "16",
        "--batch-size",
        "2",
        "--max-iters",
        "2",
        "--eval-interval",
        "2",
        "--eval-iters",
        "1",
        "--warmup-iters",
        "0",
        "--out",
        out,
    )
    assert code == 0, err
    config = load_checkpoint(out).config
    assert (config.rope, config.qk_norm, config.bias, config.norm_bias, config.activation, config.vocab_size) == (
        False,
        False,
        True,
        True,
        "gelu_tanh",
        50257,
    )
    code, stdout, err = scratchgpt(capsys, "export", "--format", "hf", out, tmp_path / "hf")
    assert code == 0 and "GPT2LMHeadModel.from_pretrained" in stdout, err
    hf = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "hf").eval()
    ids = torch.tensor([[464, 2068, 7586]])
    greedy = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False, pad_token_id=0)
    ours = load_checkpoint(out).model.eval().generate(ids, 10, temperature=0)
    assert greedy.tolist() == ours.tolist()
    tokenizer = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")  # GPT-2's own files came along
    assert tokenizer("The quick brown")["input_ids"] == [464, 2068, 7586]


def test_export_format_hf_refuses_another_architecture_in_one_line(capsys, tmp_path):
    code, out, err = scratchgpt(capsys, "export", "--format", "hf", shipped_checkpoint("char"), tmp_path / "hf")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "cannot be a Hugging Face GPT-2: it has rotary positions" in err and "--arch gpt2" in err
    assert not (tmp_path / "hf").exists()
