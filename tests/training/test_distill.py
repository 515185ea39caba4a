"""Distillation: the teacher's averaged distribution and the loss toward it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scratchgpt.model.gpt import GPTConfig, build_model, lm_loss
from scratchgpt.training.distill import Teacher, distill_loss, distillation

CONFIG = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.3)


def tiny(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model(CONFIG)


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    window = torch.randint(CONFIG.vocab_size, (3, CONFIG.block_size + 1), generator=g)
    return window[:, :-1], window[:, 1:]


def test_a_teacher_averages_its_members_probabilities_not_their_logits():
    a, b = tiny(1), tiny(2)
    x, _ = batch()
    teacher = Teacher([a, b])
    with torch.no_grad():
        pa, pb = (F.softmax(m(x)[0], dim=-1) for m in (a, b))
    assert torch.allclose(teacher.log_probs(x).exp(), (pa + pb) / 2, atol=1e-6)
    assert torch.allclose(teacher.log_probs(x).exp().sum(-1), torch.ones(3, CONFIG.block_size), atol=1e-5)


def test_a_teacher_is_frozen_and_runs_without_dropout():
    model = tiny(1)
    model.train()
    teacher = Teacher([model])
    x, _ = batch()
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    assert torch.equal(teacher.log_probs(x), teacher.log_probs(x))  # dropout 0.3 would differ


def test_weight_zero_is_the_plain_next_token_loss():
    model = tiny(1)
    x, y = batch()
    logits, loss = model(x, y)
    other = Teacher([tiny(2)]).log_probs(x)
    assert distill_loss(logits, y, other, 0.0).item() == pytest.approx(loss.item(), rel=1e-6)
    assert loss.item() == pytest.approx(lm_loss(logits, y).item())


def test_a_student_that_matches_its_teacher_gets_no_gradient_from_it():
    student = tiny(1)
    student.eval()  # no dropout: the student's distribution equals the teacher copy's
    teacher = Teacher([tiny(1)])
    x, y = batch()
    distillation(teacher, 1.0)(student, x, y).backward()
    assert max(p.grad.abs().max().item() for p in student.parameters()) < 1e-6


def test_the_soft_loss_is_the_teachers_entropy_plus_the_kl_to_the_student():
    student, teacher = tiny(1), Teacher([tiny(2), tiny(3)])
    student.eval()
    x, y = batch()
    with torch.no_grad():
        logits, _ = student(x)
        t = teacher.log_probs(x)
        s = F.log_softmax(logits, dim=-1)
        entropy = -(t.exp() * t).sum(-1).mean()
        kl = (t.exp() * (t - s)).sum(-1).mean()
        assert distill_loss(logits, y, t, 1.0).item() == pytest.approx((entropy + kl).item(), rel=1e-5)
        half = 0.5 * lm_loss(logits, y) + 0.5 * (entropy + kl)
        assert distill_loss(logits, y, t, 0.5).item() == pytest.approx(half.item(), rel=1e-5)


def test_training_toward_a_teacher_brings_the_student_closer_to_it():
    teacher, student = Teacher([tiny(1)]), tiny(2)
    student.eval()
    x, y = batch()

    def kl() -> float:
        with torch.no_grad():
            t, s = teacher.log_probs(x), F.log_softmax(student(x)[0], dim=-1)
            return (t.exp() * (t - s)).sum(-1).mean().item()

    before = kl()
    opt = torch.optim.AdamW(student.parameters(), lr=1e-2)
    for _ in range(20):
        distillation(teacher, 1.0)(student, x, y).backward()
        opt.step()
        opt.zero_grad()
    assert kl() < before / 4


def test_a_teachers_scores_of_a_split_sum_to_the_loss_eval_gives_it():
    from scratchgpt.data import val_windows
    from scratchgpt.model.evaluate import evaluate_windows

    model = tiny(1)
    tokens = torch.randint(CONFIG.vocab_size, (53,), generator=torch.Generator().manual_seed(3)).numpy()
    table = Teacher([model]).score(tokens, block_size=8, batch_size=2)
    assert table.shape == (53, CONFIG.vocab_size) and table.dtype == torch.float16
    assert torch.allclose(table[0].float().exp(), torch.full((CONFIG.vocab_size,), 1 / CONFIG.vocab_size), atol=1e-4)
    total, count = evaluate_windows(model, val_windows(tokens, 8, 2))
    rows = torch.arange(1, 53)
    assert count == 52
    assert -table[rows, torch.from_numpy(tokens[1:]).long()].float().sum().item() == pytest.approx(total, rel=1e-3)


def test_scores_looked_up_for_windows_the_teacher_read_give_the_online_loss():
    sharp = [tiny(1), tiny(2), tiny(3)]
    for model in sharp:  # confident models, so another token's scores give another loss
        model.lm_head.weight.data *= 50
    student, teacher = sharp[0], Teacher(sharp[1:])
    student.eval()
    tokens = torch.randint(CONFIG.vocab_size, (4 * 8 + 1,), generator=torch.Generator().manual_seed(4))
    table = teacher.score(tokens.numpy(), block_size=8)
    offsets = torch.tensor([0, 16, 8])  # windows where the scoring pass had its own
    windows = tokens[offsets[:, None] + torch.arange(9)]
    x, y = windows[:, :-1], windows[:, 1:]
    online = distillation(teacher, 0.5)(student, x, y)
    looked_up = distillation(teacher, 0.5, table)(student, x, y, offsets)
    assert looked_up.item() == pytest.approx(online.item(), rel=1e-3)
    shifted = distillation(teacher, 0.5, table)(student, x, y, offsets + 1)  # another token's scores
    assert abs(shifted.item() - online.item()) > 1e-2
