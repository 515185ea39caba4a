"""The parts `scratchgpt ladder` takes away (GPTConfig's mlp, residual, norms, positions): each switch does what it
says, the default model is unchanged, and checkpoints say only what differs from the defaults."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from scratchgpt.model.checkpoint import load_checkpoint, save_checkpoint
from scratchgpt.model.gpt import MLP, GPTConfig, build_model
from scratchgpt.tokenizers import fit_tokenizer

TINY = GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, n_embd=16)
SWITCHES = ("mlp", "residual", "norms", "positions")


def model(**changes):
    torch.manual_seed(0)
    return build_model(replace(TINY, **changes)).eval()


def silence_branches(m) -> None:
    """Zero every output projection: each block's attention and MLP then add (or give) exactly zero."""
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("c_proj.weight"):
                p.zero_()


@pytest.mark.parametrize("residual", [True, False])
def test_without_residuals_a_block_gives_its_branch_not_its_input_plus_it(residual):
    m = model(residual=residual)
    silence_branches(m)
    x = torch.randn(1, 5, TINY.n_embd)
    y = m.blocks[0](x)
    torch.testing.assert_close(y, x if residual else torch.zeros_like(x))


def layer_norms(m) -> int:
    return sum(isinstance(module, nn.LayerNorm) for module in m.modules())


def test_without_norms_no_layernorm_exists_and_with_them_one_before_each_part_and_the_head():
    assert layer_norms(model()) == 2 * TINY.n_layer + 1
    assert layer_norms(model(norms=False)) == 0
    assert layer_norms(model(mlp=False)) == TINY.n_layer + 1  # no MLP, no norm before it


def test_without_the_mlp_a_block_is_attention_alone():
    full, bare = model(), model(mlp=False)
    assert not any(isinstance(m, MLP) for m in bare.modules())
    mlp_params = sum(p.numel() for b in full.blocks for p in [*b.mlp.parameters(), *b.ln_2.parameters()])
    assert bare.num_params() == full.num_params() - mlp_params
    x = torch.randn(1, 5, TINY.n_embd)
    block = bare.blocks[0]
    torch.testing.assert_close(block(x), x + block.attn(block.ln_1(x)))


@pytest.mark.parametrize("positions", ["none", "learned", "rope"])
def test_without_positions_a_one_layer_one_head_model_cannot_tell_the_order_of_a_prefix(positions):
    changes = {"none": dict(positions=False), "learned": dict(rope=False), "rope": {}}[positions]
    m = model(n_layer=1, n_head=1, **changes)
    idx = torch.tensor([[1, 2, 3, 4, 5, 6, 7]])
    shuffled = torch.tensor([[6, 4, 1, 5, 3, 2, 7]])  # the same tokens before the last, in another order
    a, b = m(idx)[0][0, -1], m(shuffled)[0][0, -1]
    if positions == "none":  # attention over a set of keys: the last position sees the same set
        torch.testing.assert_close(a, b)
    else:
        assert not torch.allclose(a, b, atol=1e-4)
    assert (m.wpe is not None) == (positions == "learned")


@pytest.mark.parametrize("changes", [{s: False} for s in SWITCHES] + [{s: False for s in SWITCHES}], ids=str)
def test_every_switch_decodes_with_the_cache_as_the_whole_window_does(changes):
    m = model(**changes)
    idx = torch.randint(TINY.vocab_size, (1, 8), generator=torch.Generator().manual_seed(1))
    whole, _ = m(idx)
    caches = [(torch.zeros(1, TINY.n_head, TINY.block_size, TINY.head_size),) * 2 for _ in m.blocks]
    caches = [(k.clone(), v.clone()) for k, v in caches]
    for t in range(idx.size(1)):
        logits = m.decode_step(idx[:, t : t + 1], torch.tensor(t), caches)
        torch.testing.assert_close(logits[0], whole[0, t], atol=1e-5, rtol=1e-5)


def test_checkpoints_write_only_the_switches_that_differ_and_read_back_alike(tmp_path):
    assert not set(SWITCHES) & set(TINY.to_dict())  # at their defaults: left out, so older versions still read them
    changed = replace(TINY, mlp=False, norms=False)
    assert {k: v for k, v in changed.to_dict().items() if k in SWITCHES} == {"mlp": False, "norms": False}
    assert GPTConfig.from_dict(changed.to_dict()) == changed
    tokenizer = fit_tokenizer("char", ["abcdefghij\n"])
    m = model(mlp=False, norms=False, residual=False, positions=False)
    path = save_checkpoint(tmp_path / "rung.safetensors", m, tokenizer)
    back = load_checkpoint(path)
    assert back.config == m.config
    idx = torch.tensor([[1, 2, 3]])
    torch.testing.assert_close(back.model.eval()(idx)[0], m(idx)[0])
