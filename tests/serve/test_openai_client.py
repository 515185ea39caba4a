"""The official `openai` package against a real server: what a client written for OpenAI sees."""

from __future__ import annotations

import concurrent.futures
import time

import pytest

openai = pytest.importorskip("openai")

from .conftest import API_KEY, EMOJI, TINY_BLOCK, wait_idle  # noqa: E402

TIMEOUT = 60.0  # generous: the machine running the suite may be loaded


@pytest.fixture
def client(base_url):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, timeout=TIMEOUT, max_retries=0) as c:
        yield c


def test_models_list_names_every_served_model(client):
    assert sorted(m.id for m in client.models.list()) == ["emoji", "tiny"]


def test_streamed_and_whole_text_are_equal_at_temperature_zero(client):
    whole = client.completions.create(model="tiny", prompt="To be", max_tokens=40, temperature=0)
    chunks = list(client.completions.create(model="tiny", prompt="To be", max_tokens=40, temperature=0, stream=True))
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage.completion_tokens == 40 and whole.usage.prompt_tokens == len("To be")
    assert "".join(c.choices[0].text for c in chunks) == whole.choices[0].text
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason == "length"


def test_chat_streamed_and_whole_are_equal_and_report_usage_when_asked(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello"}]
    whole = client.chat.completions.create(model="tiny", messages=messages, max_tokens=30, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=messages,
            max_tokens=30,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert whole.choices[0].message.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_a_stop_string_ends_the_reply_and_never_appears(client):
    free = client.completions.create(model="tiny", prompt="a", max_tokens=60, temperature=0).choices[0].text
    stop = free[10:12]
    for stream in (False, True):
        reply = client.completions.create(
            model="tiny", prompt="a", max_tokens=60, temperature=0, stop=[stop], stream=stream
        )
        chunks = list(reply) if stream else [reply]
        text = "".join(c.choices[0].text for c in chunks)
        assert text == free[: free.find(stop)] and stop not in text
        assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_same_seed_gives_the_same_text_and_another_seed_another(client):
    def sample(seed):
        return (
            client.completions.create(model="tiny", prompt="x", max_tokens=30, temperature=1.0, seed=seed)
            .choices[0]
            .text
        )

    assert sample(7) == sample(7)
    assert sample(7) != sample(8)


def test_chat_logprobs_tokens_join_into_the_text_with_top_alternatives(client):
    reply = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=20,
        temperature=0,
        logprobs=True,
        top_logprobs=3,
    )
    choice = reply.choices[0]
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    for t in content:
        assert len(t.top_logprobs) == 3 and t.top_logprobs[0].token == t.token  # greedy: the top pick
        assert t.logprob <= 0 and bytes(t.bytes).decode() == t.token


def test_completion_logprobs_streamed_carry_tokens_and_offsets(client):
    chunks = list(
        client.completions.create(model="tiny", prompt="abc", max_tokens=15, temperature=0, logprobs=2, stream=True)
    )
    tokens, offsets, text = [], [], ""
    for c in chunks:
        text += c.choices[0].text
        if c.choices[0].logprobs:
            tokens += c.choices[0].logprobs.tokens
            offsets += c.choices[0].logprobs.text_offset
            assert all(len(top) == 2 for top in c.choices[0].logprobs.top_logprobs)
    assert "".join(tokens) == text
    assert offsets == list(range(3, 3 + len(tokens)))  # from the prompt's start, as OpenAI counts


def test_echo_with_max_tokens_zero_scores_the_prompt_as_the_model_does(client, served):
    from scratchgpt.model.inspection import score_ids

    prompt = "To be, or not"
    got = client.completions.create(model="tiny", prompt=prompt, max_tokens=0, echo=True, logprobs=3)
    choice = got.choices[0]
    assert choice.text == prompt and choice.finish_reason == "length" and got.usage.completion_tokens == 0
    lp = choice.logprobs
    assert "".join(lp.tokens) == prompt and lp.text_offset == list(range(len(prompt)))
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None  # nothing came before the first token
    tiny = served[1].get("tiny")
    expected = score_ids(tiny.engine.model, tiny.tokenizer.encode(prompt), top=3)
    assert lp.token_logprobs[1:] == pytest.approx([r.logprob for r in expected], abs=1e-5)
    assert [list(t) for t in lp.top_logprobs[1:]] == [[tiny.tokenizer.decode([i]) for i, _ in r.top] for r in expected]


def test_echo_puts_the_prompt_in_front_of_the_reply_whole_and_streamed(client):
    plain = client.completions.create(model="tiny", prompt="abc", max_tokens=8, temperature=0, logprobs=1)
    whole = client.completions.create(model="tiny", prompt="abc", max_tokens=8, temperature=0, logprobs=1, echo=True)
    assert whole.choices[0].text == "abc" + plain.choices[0].text
    lp = whole.choices[0].logprobs
    assert lp.tokens == ["a", "b", "c", *plain.choices[0].logprobs.tokens]
    assert lp.text_offset == list(range(3 + 8)) and lp.token_logprobs[0] is None
    assert lp.token_logprobs[3:] == plain.choices[0].logprobs.token_logprobs  # the reply's own, as without echo
    chunks = list(
        client.completions.create(model="tiny", prompt="abc", max_tokens=8, temperature=0, echo=True, stream=True)
    )
    assert chunks[0].choices[0].text == "abc" and "".join(c.choices[0].text for c in chunks) == whole.choices[0].text


def test_a_prompt_of_token_ids_is_the_text_they_spell(client, served):
    tokenizer = served[1].get("tiny").tokenizer
    ids = tokenizer.encode("To be")
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=10, temperature=0, echo=True)
    by_text = client.completions.create(model="tiny", prompt="To be", max_tokens=10, temperature=0, echo=True)
    assert by_ids.choices[0].text == by_text.choices[0].text and by_ids.usage.prompt_tokens == len(ids)
    for bad in ([tokenizer.vocab_size], [], [-1], [1.5], [[1], [2]]):
        with pytest.raises(openai.BadRequestError, match="token ids"):
            client.completions.create(model="tiny", prompt=bad, max_tokens=3)
    with pytest.raises(openai.BadRequestError, match="max_tokens"):  # nothing to generate is only for echo
        client.completions.create(model="tiny", prompt="a", max_tokens=0)


def test_a_prompt_over_the_window_is_a_bad_request_naming_both_sizes(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="ab" * TINY_BLOCK, max_tokens=5)
    assert str(2 * TINY_BLOCK) in str(e.value) and str(TINY_BLOCK) in str(e.value)
    with pytest.raises(openai.BadRequestError, match="max_tokens 10"):
        client.completions.create(model="tiny", prompt="a" * (TINY_BLOCK - 5), max_tokens=10)


def test_out_of_range_fields_unknown_models_and_n_are_bad_requests(client):
    for bad in (dict(temperature=-1), dict(top_p=0), dict(n=2), dict(model="nope"), dict(logprobs=21)):
        with pytest.raises(openai.BadRequestError):
            client.completions.create(**{"model": "tiny", "prompt": "a", "max_tokens": 3, **bad})


def test_a_missing_or_wrong_key_is_an_authentication_error(base_url):
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key="wrong", timeout=TIMEOUT, max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError):
            c.models.list()


def test_parallel_clients_are_all_answered_as_each_would_be_alone(client, served):
    prompts = [f"{c} said" for c in "abcdefgh"]
    alone = {
        p: client.completions.create(model="tiny", prompt=p, max_tokens=25, temperature=0).choices[0].text
        for p in prompts[:3]
    }
    steps = served[1].by_name["tiny"].engine.steps
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        replies = list(
            pool.map(
                lambda p: client.completions.create(model="tiny", prompt=p, max_tokens=25, temperature=0, seed=1),
                prompts,
            )
        )
    assert all(r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 25 for r in replies)
    assert {p: r.choices[0].text for p, r in zip(prompts, replies, strict=True) if p in alone} == alone
    assert served[1].by_name["tiny"].engine.steps - steps < 8 * 25  # they shared decode steps


def test_a_client_that_leaves_after_one_chunk_frees_the_engine_within_a_second(client, served):
    engine = served[1].by_name["tiny"].engine
    steps = engine.steps
    stream = client.completions.create(
        model="tiny", prompt="a", max_tokens=TINY_BLOCK - 10, temperature=1.0, stream=True
    )
    next(iter(stream))
    stream.close()
    left = time.monotonic()
    assert wait_idle(engine, 1.0), f"still busy {time.monotonic() - left:.2f} s after the client left"
    assert engine.steps - steps < TINY_BLOCK - 10


def test_a_character_split_across_tokens_never_arrives_as_replacement(client):
    chunks = list(
        client.completions.create(model="emoji", prompt=EMOJI, max_tokens=8, temperature=0, stream=True, logprobs=0)
    )
    pieces = [c.choices[0].text for c in chunks]
    assert "".join(pieces) == EMOJI * 4 and not any("\ufffd" in p for p in pieces)
    assert all(p in ("", EMOJI) for p in pieces)  # each emoji arrives whole, with its second token
    tokens = [t for c in chunks if c.choices[0].logprobs for t in c.choices[0].logprobs.tokens]
    assert tokens == ["bytes:\\xf0\\x9f\\x98", "bytes:\\x80"] * 4  # OpenAI's spelling of part of a character
