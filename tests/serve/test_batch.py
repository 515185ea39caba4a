"""The batched engine on its own: a request's tokens are what the single-stream engine gives it, in any company."""

from __future__ import annotations

import queue

import pytest
import torch

from scratchgpt.model.engine import Engine
from scratchgpt.model.logprobs import token_logprobs
from scratchgpt.serve.batch import BatchEngine, Finished, Piece, Request

from .conftest import tiny_model

PROMPTS = ["hello", "a", "the quick brown fox", "zz", "Abc def"]


def run(engine: BatchEngine, requests: list[dict]) -> list[tuple[str, list, Finished]]:
    """Submit every request at once; each one's text, (logprob, offset) pairs and Finished."""
    inboxes = []
    for fields in requests:
        inbox: queue.Queue = queue.Queue()
        engine.submit(Request(emit=inbox.put, **fields))
        inboxes.append(inbox)
    results = []
    for inbox in inboxes:
        text, tokens = "", []
        while not isinstance(event := inbox.get(timeout=60), Finished):
            assert isinstance(event, Piece)
            text, tokens = text + event.text, tokens + event.tokens
        results.append((text, tokens, event))
    return results


def make_engine(parallel: int = 3, **config_changes) -> tuple[BatchEngine, torch.nn.Module, object]:
    model, tokenizer = tiny_model(**config_changes)
    engine = BatchEngine(model, tokenizer, parallel=parallel, max_queue=16)
    engine.start()
    return engine, model, tokenizer


@pytest.mark.parametrize("positions", [dict(), dict(rope=False, qk_norm=False)], ids=["rope", "learned-pos"])
def test_each_request_gets_the_single_stream_engines_tokens_alone_or_batched(positions):
    engine, model, tokenizer = make_engine(**positions)
    try:
        for temperature in (0.0, 1.0):
            # more requests than rows, of different lengths: rows leave, others move into them, waiters join
            requests = [
                dict(prompt=tokenizer.encode(p), max_tokens=10 + 7 * i, temperature=temperature, seed=i)
                for i, p in enumerate(PROMPTS)
            ]
            batched = [text for text, _, _ in run(engine, requests)]
            alone = [run(engine, [r])[0][0] for r in requests]
            single = Engine(model)
            reference = [
                tokenizer.decode(
                    single.generate(
                        r["prompt"],
                        max_new_tokens=r["max_tokens"],
                        temperature=temperature,
                        generator=torch.Generator().manual_seed(r["seed"]),
                    )
                )
                for r in requests
            ]
            assert batched == alone == reference
    finally:
        engine.stop()


def test_logprobs_are_the_models_own_for_each_token_of_the_reply():
    engine, model, tokenizer = make_engine()
    try:
        prompt = tokenizer.encode("to be")
        text, tokens, done = run(engine, [dict(prompt=prompt, max_tokens=6, temperature=1.0, seed=3, logprobs=2)])[0]
        ids = tokenizer.encode(text)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + ids]))[0][0, len(prompt) - 1 : -1]  # (6, V): before each token
        expected = token_logprobs(logits, torch.tensor(ids), 2)
        assert [lp.id for lp, _ in tokens] == ids and [offset for _, offset in tokens] == list(range(6))
        for (got, _), want in zip(tokens, expected, strict=True):
            assert abs(got.logprob - want.logprob) < 1e-4 and [i for i, _ in got.top] == [i for i, _ in want.top]
        assert (done.reason, done.prompt_tokens, done.completion_tokens) == ("length", len(prompt), 6)
    finally:
        engine.stop()


def test_a_cancelled_request_leaves_and_the_others_carry_on():
    engine, _, tokenizer = make_engine(parallel=2)
    try:
        inbox: queue.Queue = queue.Queue()
        doomed = Request(prompt=tokenizer.encode("a"), max_tokens=1500, emit=inbox.put, temperature=0)
        engine.submit(doomed)
        inbox.get(timeout=60)
        doomed.cancelled = True
        ((text, _, done),) = run(engine, [dict(prompt=tokenizer.encode("b"), max_tokens=5, temperature=0)])
        assert done.reason == "length" and len(text) == 5
        while not isinstance(event := inbox.get(timeout=60), Finished):
            pass
        assert event.reason == "cancelled" and event.completion_tokens < 1500
    finally:
        engine.stop()


def test_stopping_ends_requests_in_flight_with_a_reason():
    engine, _, tokenizer = make_engine(parallel=1)
    inbox: queue.Queue = queue.Queue()
    engine.submit(Request(prompt=tokenizer.encode("a"), max_tokens=1500, emit=inbox.put, temperature=0))
    inbox.get(timeout=60)
    engine.stop()
    while not isinstance(event := inbox.get(timeout=60), Finished):
        pass
    assert event.reason == "error" and "shutting down" in event.message


def test_a_step_that_fails_ends_its_requests_with_the_reason_and_the_engine_serves_on():
    engine, model, tokenizer = make_engine()
    step, calls = model.decode_step, []

    def failing_once(*args):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated fault")
        return step(*args)

    model.decode_step = failing_once
    try:
        ((_, _, done),) = run(engine, [dict(prompt=tokenizer.encode("a"), max_tokens=10, temperature=0)])
        assert done.reason == "error" and "simulated fault" in done.message and done.completion_tokens == 3
        ((text, _, done),) = run(engine, [dict(prompt=tokenizer.encode("a"), max_tokens=10, temperature=0)])
        assert done.reason == "length" and len(text) == 10
    finally:
        engine.stop()


def test_a_batch_never_samples_the_tokenizers_never_sampled_ids_greedy_or_not():
    engine, model, tokenizer = make_engine()
    try:
        greedy = dict(prompt=tokenizer.encode("hi"), max_tokens=200, temperature=0.0)
        (text, _, _) = run(engine, [greedy])[0]
    finally:
        engine.stop(10)
    favourite = max(set(text), key=text.count)  # what greedy decoding picks most: now never to be picked
    tokenizer.never_sampled = tuple(tokenizer.encode(favourite))
    engine = BatchEngine(model, tokenizer, parallel=3, max_queue=16)
    engine.start()
    try:
        requests = [greedy, *(dict(greedy, temperature=t, seed=1) for t in (1.0, 1.5)), dict(greedy, top_k=3, seed=2)]
        for text, _, finished in run(engine, requests):
            assert finished.reason == "length" and len(text) == 200 and favourite not in text
    finally:
        engine.stop(10)
