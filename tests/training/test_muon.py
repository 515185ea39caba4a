"""Muon: the orthogonalisation, which parameters it takes, and that it trains and resumes."""

from __future__ import annotations

import pytest
import torch

from scratchgpt.model.checkpoint import load_train_state, save_train_state
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.training.loop import make_optimizer
from scratchgpt.training.muon import Muon, muon_groups, orthogonalize


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(64, 64), (48, 160), (160, 48)])
def test_orthogonalize_pushes_every_singular_value_near_one_and_keeps_the_directions(shape, dtype):
    torch.manual_seed(0)
    k = min(shape)
    u, _ = torch.linalg.qr(torch.randn(shape[0], k))
    v, _ = torch.linalg.qr(torch.randn(shape[1], k))
    g = u @ torch.diag(torch.logspace(-2, 0, k)) @ v.T  # singular values from 0.01 to 1
    o = orthogonalize(g, dtype=dtype)
    assert o.dtype == g.dtype  # iterated in dtype, handed back in the gradient's
    s = torch.linalg.svdvals(o)
    assert s.min() > 0.5 and s.max() < 1.3, s
    u, _, vh = torch.linalg.svd(g, full_matrices=False)
    polar = u @ vh  # the exact nearest semi-orthogonal matrix
    cosine = (o * polar).sum() / (o.norm() * polar.norm())
    assert cosine > 0.9


def test_orthogonalize_treats_a_stack_as_separate_matrices():
    torch.manual_seed(1)
    stack = torch.randn(3, 32, 32)
    stack[1] *= 100  # a large block must not shrink the others' update
    together = orthogonalize(stack)
    for i in range(3):
        torch.testing.assert_close(together[i], orthogonalize(stack[i]), atol=1e-4, rtol=1e-4)


def test_a_step_orthogonalises_each_matrix_on_its_own_though_matrices_of_one_shape_share_a_stack():
    torch.manual_seed(2)
    shapes = [(96, 32), (32, 32), (32, 96), (96, 32), (32, 32)]  # tall, square, wide; 3x32 rows split in 3
    params = [torch.nn.Parameter(torch.randn(s)) for s in shapes]
    grads = [torch.randn(s) * (10.0 if i == 1 else 1.0) for i, s in enumerate(shapes)]
    split = [3, 1, 1, 1, 1]
    groups = [{"params": [p], "muon": True, "split": n} for p, n in zip(params, split, strict=True)]
    opt = Muon(groups, lr=0.01, momentum=0.0, ns_dtype=torch.float32)
    before = [p.detach().clone() for p in params]
    for p, g in zip(params, grads, strict=True):
        p.grad = g.clone()
    opt.step()
    for p, b, g, n in zip(params, before, grads, split, strict=True):
        mats = orthogonalize(g.view(n, g.size(0) // n, g.size(1)))  # this matrix alone
        want = b - 0.01 * 0.2 * max(mats.shape[-2:]) ** 0.5 * mats.reshape(g.shape)
        torch.testing.assert_close(p.detach(), want, atol=1e-5, rtol=1e-4)


def test_newton_schulz_runs_in_bf16_only_where_bf16_matmuls_are_native(monkeypatch):
    from scratchgpt.training import muon

    cpu = torch.device("cpu")
    monkeypatch.setattr("scratchgpt.model.device.cpu_has_fast_bf16", lambda: True)
    assert muon.newton_schulz_dtype(cpu) == torch.bfloat16
    monkeypatch.setattr("scratchgpt.model.device.cpu_has_fast_bf16", lambda: False)
    assert muon.newton_schulz_dtype(cpu) == torch.float32  # AVX2: emulated bf16 is slower than fp32


def test_muon_takes_the_blocks_matrices_and_leaves_embeddings_head_and_norms_to_adamw():
    model = build_model(GPTConfig(vocab_size=65, block_size=16, n_layer=2, n_head=2, n_embd=32, tie_embeddings=True))
    groups = muon_groups(model, weight_decay=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    by_kind = {
        (g["muon"], g.get("split", 1), g["weight_decay"]): sorted(names[id(p)] for p in g["params"]) for g in groups
    }
    assert by_kind[(True, 3, 0.1)] == ["blocks.0.attn.c_attn.weight", "blocks.1.attn.c_attn.weight"]
    assert len(by_kind[(True, 1, 0.1)]) == 6  # attn.c_proj, mlp.c_fc, mlp.c_proj per block
    assert by_kind[(False, 1, 0.1)] == ["wte.weight"]  # the tied head is the embedding, listed once
    assert all("ln" in n for n in by_kind[(False, 1, 0.0)])
    in_groups = sum(len(g["params"]) for g in groups)
    assert in_groups == len(list(model.parameters()))


def test_a_muon_step_changes_a_matrix_by_an_orthogonal_update_of_the_promised_size():
    lin = torch.nn.Linear(32, 128, bias=False)
    before = lin.weight.detach().clone()
    opt = Muon([{"params": [lin.weight], "muon": True}], lr=0.01, momentum=0.0)
    lin.weight.grad = torch.randn(128, 32)
    opt.step()
    delta = (before - lin.weight.detach()) / 0.01  # = 0.2·√128 · orthogonalize(grad)
    s = torch.linalg.svdvals(delta / (0.2 * 128**0.5))
    assert s.min() > 0.5 and s.max() < 1.3


def _train(model, optimizer, steps, generator=None):
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        x = torch.randint(0, 8, (8, 16), generator=g)
        y = (x + 1) % 8  # next token = this one + 1: learnable from the current token alone
        _, loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def test_muon_trains_a_small_gpt():
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=8, block_size=16, n_layer=2, n_head=2, n_embd=32))
    losses = _train(model, make_optimizer(model, lr=3e-3, kind="muon"), 60)
    assert losses[0] > 1.8  # ~ln 8
    assert losses[-1] < 0.2


def test_muon_state_round_trips_through_a_train_state_file(tmp_path):
    """Resume is exact: saving after 5 steps, loading into a fresh optimizer and taking 5 more
    gives the same weights as 10 steps in one go."""

    def fresh():
        torch.manual_seed(0)
        model = build_model(GPTConfig(vocab_size=8, block_size=16, n_layer=1, n_head=2, n_embd=16, tie_embeddings=True))
        return model, make_optimizer(model, lr=3e-3, kind="muon")

    straight, opt = fresh()
    _train(straight, opt, 10)

    model, opt = fresh()
    batches = torch.Generator().manual_seed(0)
    _train(model, opt, 5, batches)
    save_train_state(tmp_path / "s.safetensors", opt, rng={}, state={"step": 4})
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    resumed, opt2 = fresh()
    resumed.load_state_dict(weights)
    load_train_state(tmp_path / "s.safetensors", opt2)
    _train(resumed, opt2, 5, batches)  # the next 5 batches, as the straight run saw them
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=name)


def test_an_adamw_run_does_not_resume_with_muon(tmp_path):
    from scratchgpt.core.errors import ScratchGPTError

    model = build_model(GPTConfig(vocab_size=8, block_size=16, n_layer=1, n_head=2, n_embd=16))
    adamw = make_optimizer(model, lr=1e-3)
    _train(model, adamw, 1)
    save_train_state(tmp_path / "s.safetensors", adamw, rng={}, state={})
    with pytest.raises(ScratchGPTError, match="does not fit"):
        load_train_state(tmp_path / "s.safetensors", make_optimizer(model, lr=1e-3, kind="muon"))
