"""Raw HTTP for what the openai package never sends: broken bodies, foreign hosts, keys, limits, ollama's NDJSON."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

from scratchgpt.serve.app import build_app
from scratchgpt.serve.batch import Request
from scratchgpt.serve.security import MAX_BODY, host_name, is_loopback_name

from .conftest import API_KEY, TINY_BLOCK, running, serve, tiny_model, wait_idle

KEY = {"Authorization": f"Bearer {API_KEY}"}
JSON_KEY = {**KEY, "Content-Type": "application/json"}  # what a client sending raw bytes declares


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, timeout=60.0) as c:
        yield c


def error_of(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_health_is_open_and_everything_else_needs_the_key(http):
    assert http.get("/health").json() == {"status": "ok"}
    assert http.get("/v1/models").status_code == 401
    assert http.get("/v1/models", headers={"x-api-key": API_KEY}).status_code == 200
    assert http.get("/v1/models", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_bad_json_and_a_non_object_body_are_400_in_openai_shape(http):
    r = http.post("/v1/completions", content=b"{not json", headers=JSON_KEY)
    assert r.status_code == 400 and "not valid JSON" in error_of(r)["message"]
    r = http.post("/v1/chat/completions", json=[1, 2], headers=KEY)
    assert r.status_code == 400 and error_of(r)["type"] == "invalid_request_error"
    r = http.post("/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "robot"}]}, headers=KEY)
    assert r.status_code == 400 and error_of(r)["param"] == "messages[0]"


def test_a_body_over_a_mebibyte_is_413_declared_or_streamed(http):
    big = json.dumps({"model": "tiny", "prompt": "a" * MAX_BODY}).encode()
    assert http.post("/v1/completions", content=big, headers=JSON_KEY).status_code == 413

    def chunks():  # no Content-Length: the handler counts the bytes as they arrive
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = http.post("/v1/completions", content=chunks(), headers=JSON_KEY)
    assert r.status_code == 413 and "1,048,576" in error_of(r)["message"]


def test_a_client_still_sending_past_the_limit_reads_its_413(base_url):
    """The server reads off what is still coming (up to LINGER_BODY) before it answers and closes: a socket
    closed on unread bytes is reset, and a reset can throw away the 413 before the client reads it."""
    host, port = base_url.removeprefix("http://").split(":")
    frame = b"10000\r\n" + b"a" * 65536 + b"\r\n"  # a 64 KiB chunk
    with socket.create_connection((host, int(port)), timeout=30) as s:
        s.sendall(
            f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for _ in range(MAX_BODY // 65536 + 1):
            s.sendall(frame)
        time.sleep(0.3)  # the server has seen the limit pass; the rest comes late
        for _ in range(4):
            s.sendall(frame)  # a server that had answered and closed would reset this: BrokenPipeError
        s.sendall(b"0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 413 ") and b'"code":"body_too_large"' in reply


def test_a_foreign_host_is_refused_while_bound_to_loopback(http):
    r = http.get("/v1/models", headers={**KEY, "Host": "attacker.example:8000"})
    assert r.status_code == 403 and error_of(r)["code"] == "forbidden_host"
    assert http.get("/v1/models", headers={**KEY, "Host": "localhost:8000"}).status_code == 200
    assert is_loopback_name("[::1]:80") and host_name("[::1]:80") == "::1" and not is_loopback_name("127.0.0.1.evil")


def test_unknown_paths_are_404_in_openai_shape(http):
    r = http.get("/v1/nothing", headers=KEY)
    assert r.status_code == 404 and error_of(r)["type"] == "not_found_error"


def test_ollama_generate_streams_ndjson_ending_done_with_counts(http):
    body = {"model": "tiny", "prompt": "hi", "options": {"temperature": 0, "num_predict": 12}}
    with http.stream("POST", "/api/generate", json=body, headers=KEY) as r:
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.iter_lines() if line]
    assert all(not x["done"] for x in lines[:-1])
    last = lines[-1]
    assert last["done"] and last["done_reason"] == "length" and last["eval_count"] == 12
    assert last["prompt_eval_count"] == 2 and last["total_duration"] >= last["eval_duration"] > 0
    whole = http.post("/api/generate", json={**body, "stream": False}, headers=KEY).json()
    assert whole["response"] == "".join(x["response"] for x in lines)


def test_ollama_chat_answers_as_the_assistant_and_errors_plainly(http):
    body = {
        "model": "tiny",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
        "options": {"temperature": 0, "num_predict": 5},
    }
    reply = http.post("/api/chat", json=body, headers=KEY).json()
    assert reply["message"]["role"] == "assistant" and reply["done"]
    r = http.post("/api/chat", json={**body, "model": "nope"}, headers=KEY)
    assert r.status_code == 400 and "nope" in r.json()["error"]
    assert [m["name"] for m in http.get("/api/tags", headers=KEY).json()["models"]] == ["tiny", "emoji"]


def test_past_parallel_and_the_queue_a_request_gets_503_with_retry_after():
    model, tokenizer = tiny_model()
    models = serve(("tiny", model, tokenizer), parallel=1, max_queue=0)
    engine = models.by_name["tiny"].engine
    holder = Request(prompt=[1], max_tokens=TINY_BLOCK - 10, emit=lambda e: None)  # holds the one slot a while
    engine.submit(holder)
    with running(build_app(models)) as url:
        r = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "a"}, timeout=60)
    holder.cancelled = True
    models.stop()
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and error_of(r)["code"] == "server_busy"


def test_cors_is_off_by_default_and_on_only_for_the_origin_given():
    model, tokenizer = tiny_model()
    models = serve(("tiny", model, tokenizer))
    preflight = {"Origin": "http://page.example", "Access-Control-Request-Method": "POST"}
    with running(build_app(models)) as url:
        r = httpx.get(f"{url}/v1/models", headers={"Origin": "http://page.example"}, timeout=60)
        assert "access-control-allow-origin" not in r.headers
    with running(build_app(models, api_key=API_KEY, cors_origin="http://page.example")) as url:
        r = httpx.options(f"{url}/v1/completions", headers=preflight, timeout=60)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://page.example"
        r = httpx.options(f"{url}/v1/completions", headers={**preflight, "Origin": "http://other.example"}, timeout=60)
        assert r.headers.get("access-control-allow-origin") != "http://other.example"
    models.stop()


def test_a_client_that_hangs_up_on_a_whole_reply_frees_the_engine(served, base_url):
    engine = served[1].by_name["tiny"].engine
    steps = engine.steps
    body = {"model": "tiny", "prompt": "a", "max_tokens": TINY_BLOCK - 10, "temperature": 1.0}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
        httpx.post(f"{base_url}/v1/completions", json=body, headers=KEY, timeout=httpx.Timeout(60, read=0.3))
    assert wait_idle(engine, 2.0)
    assert engine.steps - steps < TINY_BLOCK - 10


def test_a_stream_that_fails_midway_ends_with_an_error_event_not_a_silent_cut():
    model, tokenizer = tiny_model()
    step = model.decode_step

    def failing(*args):
        if failing.calls == 5:
            raise RuntimeError("simulated fault")
        failing.calls += 1
        return step(*args)

    failing.calls = 0
    model.decode_step = failing
    models = serve(("tiny", model, tokenizer))
    with running(build_app(models)) as url:
        body = {"model": "tiny", "prompt": "a", "max_tokens": 50, "stream": True}
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=60) as r:
            frames = [line[len("data: ") :] for line in r.iter_lines() if line.startswith("data: ")]
    models.stop()
    assert len(frames) > 2 and "[DONE]" not in frames
    assert "simulated fault" in json.loads(frames[-1])["error"]["message"]
