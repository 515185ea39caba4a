"""Looking inside: generation's logprobs, score, attention weights and the logit lens, each held to a
plain recomputation (a full uncached forward, softmax(QK^T/sqrt(d) + mask) by hand, transformers)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scratchgpt.core.errors import ScratchGPTError
from scratchgpt.data import val_windows
from scratchgpt.model.engine import Completion, Engine
from scratchgpt.model.evaluate import evaluate_windows
from scratchgpt.model.gpt import GPT2_LAYOUT, GPTConfig, apply_rope, build_model
from scratchgpt.model.inspection import (
    disagreements,
    inspect_text,
    look_inside,
    score_ids,
    score_text,
    token_text,
    visible,
)
from scratchgpt.model.interop import import_model
from scratchgpt.model.sampling_settings import SamplingSettings
from scratchgpt.tokenizers import CharTokenizer

TEXT = "the quick brown fox jumps over the lazy dog; the dog sleeps.\n"
BLOCK = 24
LAYOUTS = {"rope-qknorm": {}, "gpt2": GPT2_LAYOUT}


@pytest.fixture(scope="module")
def tokenizer():
    return CharTokenizer.fit(TEXT)


def tiny(tokenizer, **layout):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16, **layout)
    model = build_model(config).eval()
    with torch.no_grad():  # bigger weights than the init: distributions far from uniform, sharper checks
        for p in model.parameters():
            p.mul_(4)
    return model


@pytest.fixture(params=list(LAYOUTS), scope="module")
def model(request, tokenizer):
    return tiny(tokenizer, **LAYOUTS[request.param])


def generate(model, tokenizer, prompt="the ", n=40, k=5, temperature=1.0, **engine_options):
    engine = Engine(model, **engine_options)
    settings = SamplingSettings(temperature=temperature, max_new_tokens=n, seed=3)
    context = tokenizer.encode(prompt)
    c = Completion(engine, tokenizer, context, settings, generator=torch.Generator().manual_seed(3), logprobs=k)
    "".join(c)
    return context, c


@torch.no_grad()
def test_generation_logprobs_equal_log_softmax_of_a_full_uncached_forward(model, tokenizer):
    context, c = generate(model, tokenizer, n=BLOCK - 4)  # the whole reply within one window
    assert len(c.logprobs) == len(c.ids) == BLOCK - 4
    logits, _ = model(torch.tensor([context + c.ids[:-1]]))  # (1, T, V): every position at once
    logp = F.log_softmax(logits[0, len(context) - 1 :].double(), -1)  # the rows that predicted the reply
    for n, record in enumerate(c.logprobs):
        assert record.id == c.ids[n]
        assert record.logprob == pytest.approx(float(logp[n, record.id]), abs=1e-4)
        assert [i for i, _ in record.top] == logp[n].topk(5).indices.tolist()


@torch.no_grad()
def test_logprobs_after_the_window_fills_match_the_cache_contents(model, tokenizer):
    engine = Engine(model)
    settings = SamplingSettings(temperature=1.0, max_new_tokens=2 * BLOCK, seed=1)
    c = Completion(engine, tokenizer, [1, 2], settings, generator=torch.Generator().manual_seed(1), logprobs=0)
    "".join(c)
    # each recorded row is what the cache's window gave; check the last one against the cache now
    logits, _ = model(torch.tensor([engine.cache.tokens[:-1]]))
    assert c.logprobs[-1].logprob == pytest.approx(float(F.log_softmax(logits[0, -1], -1)[c.ids[-1]]), abs=1e-4)


def test_top_logprobs_are_sorted_nonpositive_and_sum_to_at_most_one(model, tokenizer):
    _, c = generate(model, tokenizer, k=20)
    for record in c.logprobs:
        lps = [lp for _, lp in record.top]
        assert lps == sorted(lps, reverse=True) and all(lp <= 0 for lp in lps)
        assert sum(math.exp(lp) for lp in lps) <= 1 + 1e-5


def test_temperature_zero_picks_the_first_alternative(model, tokenizer):
    _, c = generate(model, tokenizer, temperature=0.0)
    assert all(record.top[0][0] == record.id for record in c.logprobs)


def test_without_logprobs_nothing_is_kept(model, tokenizer):
    _, c = generate(model, tokenizer, k=None)
    assert c.logprobs == [] and c.logits == [] and len(c.ids) == 40


def test_a_stop_string_keeps_the_records_in_step_with_the_ids(model, tokenizer):
    engine = Engine(model)
    settings = SamplingSettings(temperature=1.0, max_new_tokens=60, seed=3, stop=["e"])
    c = Completion(
        engine, tokenizer, tokenizer.encode("the "), settings, generator=torch.Generator().manual_seed(3), logprobs=2
    )
    text = "".join(c)
    assert c.stop_reason == "stop" and "e" not in text
    assert [r.id for r in c.logprobs] == c.ids == tokenizer.encode(text)  # the char model cuts between tokens


def test_logprobs_out_of_range_is_refused(model, tokenizer):
    with pytest.raises(ScratchGPTError, match="0 to 20"):
        Completion(Engine(model), tokenizer, [1], SamplingSettings(), logprobs=50)


@pytest.mark.parametrize("path", [pytest.param("compiled", marks=pytest.mark.slow), "int8"])
def test_compiled_and_int8_decoding_report_logprobs_near_eager_fp32(tokenizer, path):
    model = tiny(tokenizer)
    options = {"compile": True} if path == "compiled" else {"quantize": "int8"}
    _, eager = generate(model, tokenizer, n=12, temperature=0.0)
    _, other = generate(model, tokenizer, n=12, temperature=0.0, **options)
    assert other.ids == eager.ids
    # compiled: fp32 with fused kernels, 1e-4; int8: per-channel weights and a bf16 cache, 0.05 nats
    tol = 1e-4 if path == "compiled" else 0.05
    for a, b in zip(eager.logprobs, other.logprobs, strict=True):
        assert b.logprob == pytest.approx(a.logprob, abs=tol)


@torch.no_grad()
def test_score_and_generation_give_the_same_logprobs(model, tokenizer):
    context, c = generate(model, tokenizer, n=BLOCK - 5)
    scored = score_ids(model, context + c.ids, top=5)[len(context) - 1 :]
    for mine, theirs in zip(scored, c.logprobs, strict=True):
        assert mine.id == theirs.id and mine.logprob == pytest.approx(theirs.logprob, abs=1e-4)
        assert [i for i, _ in mine.top] == [i for i, _ in theirs.top]


def test_score_text_object_has_issue_30s_fields(model, tokenizer):
    result = score_text(model, tokenizer, TEXT[:20], top=3)
    assert set(result) == {"tokens", "nats_per_char", "bits_per_char", "perplexity"}
    first, second = result["tokens"][:2]
    assert first == {"token": "t", "id": tokenizer.encode("t")[0], "logprob": None, "top_logprobs": []}
    assert set(second) == {"token", "id", "logprob", "top_logprobs"} and len(second["top_logprobs"]) == 3
    assert set(second["top_logprobs"][0]) == {"token", "id", "logprob"}
    nats = -sum(t["logprob"] for t in result["tokens"][1:])
    assert result["nats_per_char"] == pytest.approx(nats / 19)
    assert result["bits_per_char"] == pytest.approx(nats / 19 / math.log(2))
    assert result["perplexity"] == pytest.approx(math.exp(nats / 19))


@torch.no_grad()
def test_a_text_longer_than_the_window_scores_every_token_once_with_a_third_of_a_window_at_least(model, tokenizer):
    ids = tokenizer.encode(TEXT * 2)  # 120 tokens, several windows
    records = score_ids(model, ids)
    assert [r.id for r in records] == ids[1:]
    # windows start 16 apart (two thirds of 24); the one at 32 first scores token 49, from the 17 tokens
    # 32..48, and the one at 48 token 65 from 48..64; computed here directly
    for start, target in ((32, 49), (48, 65)):
        logits, _ = model(torch.tensor([ids[start:target]]))
        expected = float(F.log_softmax(logits[0, -1], -1)[ids[target]])
        assert records[target - 1].logprob == pytest.approx(expected, abs=1e-4)


def test_score_with_evals_windows_gives_evals_loss(model, tokenizer):
    ids = np.array(tokenizer.encode(TEXT * 3))
    total, count = evaluate_windows(model, val_windows(ids, BLOCK, 4))
    records = score_ids(model, ids, stride=BLOCK)
    assert len(records) == count
    assert -sum(r.logprob for r in records) == pytest.approx(total, rel=1e-5)


def test_disagreements_put_the_largest_difference_first(tokenizer):
    a = score_text(tiny(tokenizer), tokenizer, TEXT[:30])
    other = tiny(tokenizer)
    with torch.no_grad():
        other.lm_head.weight.mul_(2)
    rows = disagreements(a, score_text(other, tokenizer, TEXT[:30]), n=3)
    gaps = [abs(r["logprob_a"] - r["logprob_b"]) for r in rows]
    assert len(rows) == 3 and gaps == sorted(gaps, reverse=True) and gaps[0] > 0


def attention_by_hand(model, ids):
    """softmax(q k^T / sqrt(hs) + causal mask) per layer, from the weights, written out plainly."""
    cfg, out = model.config, []
    T = len(ids)
    x = model.wte(torch.tensor([ids]))
    if model.wpe is not None:
        x = x + model.wpe(torch.arange(T))
    for block in model.blocks:
        h = block.ln_1(x)
        q, k, _ = block.attn.c_attn(h).split(cfg.n_embd, dim=-1)
        q, k = (t.view(1, T, cfg.n_head, cfg.head_size) for t in (q, k))
        if cfg.qk_norm:
            q, k = F.layer_norm(q, (cfg.head_size,)), F.layer_norm(k, (cfg.head_size,))
        if cfg.rope:
            cos, sin = model.rope_cos[:T, None, :], model.rope_sin[:T, None, :]
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        scores = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(cfg.head_size)
        mask = torch.full((T, T), float("-inf")).triu(1)
        out.append(torch.softmax(scores + mask, dim=-1)[0])
        rope = (model.rope_cos[:T, None, None, :], model.rope_sin[:T, None, None, :]) if cfg.rope else None
        x = block(x, rope)  # the block itself carries the stream to the next layer
    return torch.stack(out)  # (n_layer, nh, T, T)


def test_attention_rows_equal_a_softmax_recomputed_by_hand(model, tokenizer):
    ids = tokenizer.encode(TEXT[:BLOCK])
    with torch.no_grad():
        attention, _ = look_inside(model, ids)
        expected = attention_by_hand(model, ids)
    torch.testing.assert_close(attention, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(attention.sum(-1), torch.ones(2, 2, BLOCK))


@torch.no_grad()
def test_the_lens_last_row_is_the_models_own_output(model, tokenizer):
    ids = tokenizer.encode(TEXT[:10])
    _, lens = look_inside(model, ids, top=3)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids]))[0][0, -1], -1)
    assert len(lens) == 3 and [r.layer for r in lens] == [0, 1, 2]
    top = probs.topk(3)
    assert [i for i, _ in lens[-1].top] == top.indices.tolist()
    assert lens[-1].final_prob == pytest.approx(float(top.values[0]), abs=1e-6)


def test_inspect_text_object_has_issue_30s_shape(model, tokenizer):
    result = inspect_text(model, tokenizer, "the dog", top=4)
    assert set(result) == {"tokens", "attention", "lens"}
    assert [t["token"] for t in result["tokens"]] == list("the dog")
    assert np.array(result["attention"]).shape == (2, 2, 7)  # layer, head, position
    assert len(result["lens"]) == 3 and len(result["lens"][0]["top"]) == 4
    assert set(result["lens"][0]["top"][0]) == {"token", "id", "prob"}


@pytest.mark.parametrize("text, message", [("", "empty"), ("x" * (BLOCK + 1), "longer than this model's window")])
def test_inspect_refuses_an_empty_or_too_long_prompt(model, tokenizer, text, message):
    with pytest.raises(ScratchGPTError, match=message):
        inspect_text(model, CharTokenizer.fit(TEXT + "x"), text)


def test_inspect_on_the_bigram_says_it_has_no_attention(tokenizer):
    bigram = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, arch="bigram"))
    with pytest.raises(ScratchGPTError, match="no attention"):
        inspect_text(bigram, tokenizer, "the")
    assert score_text(bigram, tokenizer, "the dog")["perplexity"] > 1  # score applies to it


def test_tokens_show_their_spaces_and_newlines():
    assert visible(" the") == "␣the" and visible("a\nb\t") == "a↵b⇥" and visible("\x1b") == "\\x1b"


def test_partial_utf8_token_text_is_escaped_bytes():
    from scratchgpt.tokenizers import TiktokenTokenizer

    tok = TiktokenTokenizer()
    ids = tok.encode("🙂")
    assert len(ids) > 1 and "\\x" in token_text(tok, ids[0])


def test_imported_gpt2_attention_and_lens_equal_transformers(make_hf_gpt2):
    hf, folder = make_hf_gpt2("gpt2")
    ckpt = import_model(folder)
    ids = [464, 2068, 7586, 21831, 50256, 11, 290, 262]
    hf.set_attn_implementation("eager")  # SDPA's kernel returns no weights
    with torch.no_grad():
        out = hf(torch.tensor([ids]), output_attentions=True, output_hidden_states=True)
        attention, lens = look_inside(ckpt.model, ids, top=5)
        expected = torch.cat(out.attentions)  # (n_layer, nh, T, T)
        torch.testing.assert_close(attention, expected, atol=1e-4, rtol=0)
        # transformers' last hidden state has ln_f applied already; the ones before are raw residuals
        hidden = list(out.hidden_states[:-1])
        rows = [hf.lm_head(hf.transformer.ln_f(h[0, -1])) for h in hidden] + [hf.lm_head(out.hidden_states[-1][0, -1])]
    for row, logits in zip(lens, rows, strict=True):
        probs = torch.softmax(logits, -1)
        assert [i for i, _ in row.top] == probs.topk(5).indices.tolist()
        assert [p for _, p in row.top] == pytest.approx(probs.topk(5).values.tolist(), abs=1e-4)
