from __future__ import annotations

import pytest
import torch

from scratchgpt.model.engine import Engine, KVCache
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.sampling import pick, sample_next
from scratchgpt.model.sampling_settings import parse_stop

BLOCK = 16


@pytest.fixture(params=[dict(), dict(rope=False, qk_norm=False)], ids=["rope", "learned-pos"])
def model(request):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16, **request.param)
    return build_model(config).eval()


def full_forward_last(model, ids):
    logits, _ = model(torch.tensor([ids]))
    return logits[0, -1]


def test_kv_cache_decoding_equals_full_forward_past_block_size(model):
    engine = Engine(model)
    steps = 0
    for _ in engine.generate(
        [1, 2, 3], max_new_tokens=3 * BLOCK, temperature=1.0, generator=torch.Generator().manual_seed(1)
    ):
        # the cached logits must be what a full forward over the same window gives
        torch.testing.assert_close(
            engine._last_logits[0], full_forward_last(model, engine.cache.tokens), atol=1e-4, rtol=1e-4
        )
        assert len(engine.cache.tokens) <= BLOCK
        steps += 1
    assert steps == 3 * BLOCK


def test_a_row_of_a_batch_cache_is_written_in_place_and_scores_as_a_cache_of_its_own(model):
    batch = KVCache.empty(model.config, device=torch.device("cpu"), dtype=torch.float32, batch_size=3)
    ids = torch.tensor([[1, 2, 3, 4]])
    logits, _ = model(ids, kv_cache=batch.row(1))
    alone = KVCache.empty(model.config, device=torch.device("cpu"), dtype=torch.float32)
    torch.testing.assert_close(logits, model(ids, kv_cache=alone)[0])
    for (k, v), (k1, v1) in zip(batch.layers, alone.layers, strict=True):
        torch.testing.assert_close(k[1:2], k1)  # row 1 holds what a cache of its own holds
        torch.testing.assert_close(v[1:2], v1)
        assert not k[0].any() and not k[2].any()  # the other rows are untouched
    assert batch.pos == 0 and batch.row(1).pos == 0


def test_kv_cache_greedy_output_equals_reference_generate(model):
    context = [4, 5]
    n = BLOCK - len(context)
    reference = model.generate(torch.tensor([context]), n, temperature=0)[0, len(context) :].tolist()
    cached = list(Engine(model).generate(context, max_new_tokens=n, temperature=0))
    assert cached == reference


def test_continued_turn_runs_only_the_new_tokens_and_matches_full_forward(model):
    engine = Engine(model)
    first = [1, 2, 3]
    reply = list(engine.generate(first, max_new_tokens=4, temperature=0))
    conversation = first + reply + [7, 8]
    computed = engine.prefill(conversation)
    assert computed == 2  # only the two new tokens: the whole reply is already cached
    torch.testing.assert_close(engine._last_logits[0], full_forward_last(model, conversation), atol=1e-4, rtol=1e-4)


def test_a_conversation_longer_than_the_window_attends_to_its_last_block(model):
    engine = Engine(model)
    conversation = list(range(1, 11)) * 3  # 30 tokens > BLOCK
    engine.prefill(conversation)
    torch.testing.assert_close(
        engine._last_logits[0], full_forward_last(model, conversation[-BLOCK:]), atol=1e-4, rtol=1e-4
    )


def test_a_turn_after_the_window_was_cropped_costs_only_its_new_tokens(model):
    engine = Engine(model)
    context = [1, 2, 3]
    reply = list(engine.generate(context, max_new_tokens=BLOCK + 2, temperature=0))  # crops once
    conversation = context + reply + [5]
    assert engine.prefill(conversation) == 1  # only the new token
    window = engine.cache.tokens
    assert conversation[-len(window) :] == window
    torch.testing.assert_close(engine._last_logits[0], full_forward_last(model, window), atol=1e-4, rtol=1e-4)


def test_an_edited_history_recomputes_from_the_first_difference(model):
    engine = Engine(model)
    engine.prefill([1, 2, 3, 4, 5])
    assert engine.prefill([1, 2, 9, 4, 5]) == 3
    torch.testing.assert_close(engine._last_logits[0], full_forward_last(model, [1, 2, 9, 4, 5]), atol=1e-4, rtol=1e-4)


def test_temperature_zero_determinism(model):
    runs = [list(Engine(model).generate([1], max_new_tokens=20, temperature=0)) for _ in range(2)]
    assert runs[0] == runs[1]


def test_same_seed_same_tokens_other_seed_other_tokens(model):
    def run(seed):
        return list(
            Engine(model).generate(
                [1], max_new_tokens=30, temperature=1.5, generator=torch.Generator().manual_seed(seed)
            )
        )

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_sample_next_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(3, 50)
    g = torch.Generator().manual_seed(0)
    greedy = logits.argmax(-1, keepdim=True)
    assert torch.equal(sample_next(logits, temperature=1.0, top_k=1, generator=g), greedy)
    assert torch.equal(sample_next(logits, temperature=1.0, top_p=1e-6, generator=g), greedy)
    assert torch.equal(sample_next(logits, temperature=0), greedy)


def test_top_k_never_samples_outside_the_k_likeliest():
    logits = torch.arange(10.0).unsqueeze(0)
    g = torch.Generator().manual_seed(0)
    picks = {int(sample_next(logits, temperature=5.0, top_k=3, generator=g)) for _ in range(200)}
    assert picks <= {7, 8, 9} and len(picks) == 3


def test_sample_next_draws_tokens_as_often_as_their_probability():
    probs = torch.tensor([0.5, 0.0, 0.3, 0.15, 0.05])
    logits = probs.log().unsqueeze(0).expand(4, -1)  # four rows per call: every row draws its own
    g = torch.Generator().manual_seed(0)
    picks = torch.cat([sample_next(logits, temperature=1.0, generator=g) for _ in range(5000)]).flatten()
    freq = torch.bincount(picks, minlength=5).float() / picks.numel()
    assert freq[1] == 0  # probability 0: never
    torch.testing.assert_close(freq, probs, atol=0.01, rtol=0)  # 20,000 draws: sd <= 0.0036


def test_pick_never_lands_on_a_zero_probability_token_even_at_the_ends_of_u():
    probs = torch.tensor([[0.0, 0.0, 0.6, 0.0, 0.4, 0.0, 0.0]])
    lowest, highest = torch.zeros(1, 1), torch.full((1, 1), 1 - 2**-24)  # torch.rand's range
    assert int(pick(probs, lowest)) == 2 and int(pick(probs, highest)) == 4
    assert int(pick(probs, torch.full((1, 1), 0.59))) == 2 and int(pick(probs, torch.full((1, 1), 0.61))) == 4
    unnormalised = probs * 7  # a top-k/top-p cut leaves rows that do not sum to 1
    assert int(pick(unnormalised, torch.full((1, 1), 0.61))) == 4


def test_compiled_sampling_draws_what_eager_sampling_draws(model):
    import torch._dynamo

    torch._dynamo.reset()
    gen = dict(max_new_tokens=2 * BLOCK, temperature=1.3)  # crosses the window twice
    runs = []
    for engine in (Engine(model), Engine(model, compile=True)):
        g = torch.Generator().manual_seed(5)
        with torch._dynamo.config.patch(error_on_recompile=True):
            runs.append(list(engine.generate([1, 2, 3], generator=g, **gen)))
        runs.append(float(torch.rand((), generator=g)))  # and leaves the generator where eager does
    assert runs[0] == runs[2] and runs[1] == runs[3]
    # and what the reference sampler draws (sample_next per token) while the window has room
    n = BLOCK - 3
    g = torch.Generator().manual_seed(5)
    reference = model.generate(torch.tensor([[1, 2, 3]]), n, temperature=1.3, generator=g)
    assert runs[0][:n] == reference[0, 3:].tolist()


def test_stop_escapes_are_understood():
    assert parse_stop(r"\n\n") == "\n\n"
    assert parse_stop(r"a\tb") == "a\tb"
    assert parse_stop("ROMEO:") == "ROMEO:"


def test_compiled_decode_step_matches_eager_and_never_recompiles(model):
    import torch._dynamo

    torch._dynamo.reset()  # another model compiled earlier in this process is a legitimate recompile
    eager, compiled = Engine(model), Engine(model, compile=True)
    context, gen = [1, 2, 3], dict(max_new_tokens=2 * BLOCK, temperature=0)  # crosses the window twice
    with torch._dynamo.config.patch(error_on_recompile=True):  # pos is data: one graph for every step
        compiled_ids = []
        for token in compiled.generate(context, **gen):
            compiled_ids.append(token)
            torch.testing.assert_close(
                compiled._last_logits[0], full_forward_last(model, compiled.cache.tokens), atol=1e-4, rtol=1e-4
            )
    assert compiled_ids == list(eager.generate(context, **gen))


def test_int8_weights_keep_the_logits_close():
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=40, block_size=32, n_layer=2, n_head=2, n_embd=64)
    model = build_model(config).eval()
    with torch.no_grad():  # sharper than at init, so that agreeing on the argmax means something
        model.lm_head.weight.mul_(20)
    engine, quantized = Engine(model), Engine(model, quantize="int8")
    assert quantized._decoder is not model  # decoding runs on a copy...
    assert model.lm_head.weight.dtype == torch.float32  # ...and the model itself is untouched
    assert quantized.cache.layers[0][0].dtype == torch.bfloat16  # keys and values too: half the bytes
    context = torch.randint(0, 40, (20,)).tolist()
    agree = 0
    for i in range(1, len(context)):
        engine.prefill(context[:i])
        quantized.prefill(context[:i])
        exact, approx = engine._last_logits[0], quantized._last_logits[0]
        assert (exact - approx).abs().max() < 0.05 * exact.abs().max()
        agree += int(exact.argmax() == approx.argmax())
    assert agree >= len(context) - 3


def test_an_unknown_quantization_is_refused(model):
    with pytest.raises(ValueError, match="quantization"):
        Engine(model, quantize="int3")
