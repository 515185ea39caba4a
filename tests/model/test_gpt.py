from __future__ import annotations

import pytest
import torch

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.model.gpt import GPT2_LAYOUT, Bigram, GPTConfig, build_model, resize_vocab

VARIANTS = [
    dict(),
    dict(rope=False, qk_norm=False, activation="gelu", tie_embeddings=True, bias=True),
]


def tiny(**kw) -> GPTConfig:
    return GPTConfig(**{"vocab_size": 17, "block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 8, **kw})


@pytest.mark.parametrize("kw", VARIANTS)
def test_changing_a_later_token_never_changes_earlier_logits(kw):
    torch.manual_seed(0)
    model = build_model(tiny(**kw)).eval()
    x = torch.randint(0, 17, (2, 16))
    y = x.clone()
    y[:, 10] = (y[:, 10] + 1) % 17
    a, _ = model(x)
    b, _ = model(y)
    torch.testing.assert_close(a[:, :10], b[:, :10])
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_loss_of_an_untrained_model_is_near_log_vocab():
    torch.manual_seed(0)
    model = build_model(tiny())
    x = torch.randint(0, 17, (4, 16))
    _, loss = model(x, x)
    assert abs(loss.item() - torch.log(torch.tensor(17.0)).item()) < 0.3


def test_last_only_gives_the_last_position_of_the_full_logits():
    model = build_model(tiny()).eval()
    x = torch.randint(0, 17, (2, 9))
    full, _ = model(x)
    last, _ = model(x, last_only=True)
    torch.testing.assert_close(last[:, 0], full[:, -1])


def test_bigram_depends_only_on_the_current_token():
    model = Bigram(tiny(arch="bigram"))
    a, _ = model(torch.tensor([[1, 2, 3]]))
    b, _ = model(torch.tensor([[5, 9, 3]]))
    torch.testing.assert_close(a[0, -1], b[0, -1])
    assert model.num_params() == 17 * 17


@pytest.mark.parametrize("arch", ["gpt", "bigram"])
def test_resize_vocab_keeps_old_token_logits(arch):
    torch.manual_seed(0)
    model = build_model(tiny(arch=arch)).eval()
    grown = resize_vocab(model, 20).eval()
    x = torch.randint(0, 17, (1, 8))
    torch.testing.assert_close(grown(x)[0][..., :17], model(x)[0])
    assert grown.config.vocab_size == 20


@pytest.mark.parametrize(
    "kw, flag",
    [
        (dict(n_embd=10, n_head=3), "--n-embd"),
        (dict(n_layer=0), "--n-layer"),
        (dict(dropout=1.5), "--dropout"),
        (dict(attn_dropout=-0.1), "--attn-dropout"),
    ],
)
def test_bad_configs_are_user_errors_naming_the_flag(kw, flag):
    with pytest.raises(ScratchGPTError, match=flag):
        tiny(**kw)


def test_config_round_trips_through_a_dict_and_rejects_unknown_fields():
    c = tiny(rope=False)
    assert GPTConfig.from_dict(c.to_dict()) == c
    assert "attn_dropout" not in c.to_dict()  # unset, it is left out: earlier versions read the checkpoint
    c = tiny(dropout=0.2, attn_dropout=0.0)
    assert GPTConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ScratchGPTError, match="unknown fields"):
        GPTConfig.from_dict({**c.to_dict(), "n_experts": 8})


def test_attention_dropout_follows_dropout_unless_set_apart():
    x = torch.randint(0, 17, (2, 16))

    def attention_is_random(model) -> bool:
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0  # the residual dropouts off: only the attention weights' can vary a forward
        return not torch.equal(model(x)[0], model(x)[0])

    assert attention_is_random(build_model(tiny(dropout=0.4)))
    assert not attention_is_random(build_model(tiny(dropout=0.4, attn_dropout=0.0)))
    assert attention_is_random(build_model(tiny(attn_dropout=0.4)))
    model = build_model(tiny(dropout=0.4))
    model.set_dropout(attn_dropout=0.0)  # a fine-tune's --attn-dropout 0
    assert model.config.dropout == 0.4 and not attention_is_random(model)
    model.set_dropout(dropout=0.1)  # attention keeps its own setting
    assert model.config.attention_dropout == 0.0 and not attention_is_random(model)


def test_layout_fields_newer_than_a_checkpoint_are_left_out_at_their_defaults():
    plain = GPTConfig(vocab_size=11)
    assert "norm_bias" not in plain.to_dict() and GPTConfig.from_dict(plain.to_dict()) == plain
    gpt2 = GPTConfig(vocab_size=11, **GPT2_LAYOUT)
    assert gpt2.to_dict()["norm_bias"] is True and GPTConfig.from_dict(gpt2.to_dict()) == gpt2
    model = build_model(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, **GPT2_LAYOUT))
    assert model.blocks[0].ln_1.bias is not None and model.ln_f.bias is not None
    assert model.lm_head.weight is model.wte.weight and model.wpe is not None
