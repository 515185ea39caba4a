"""`scratchgpt serve` under attack, as a hostile page or client would try it, against a real server process
(raw sockets and httpx; the openai client where it applies): every bad request is a 4xx in its API's
shape, cross-site requests are refused, slow clients are cut off, and the log shows no traceback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from scratchgpt.model.checkpoint import save_checkpoint
from scratchgpt.serve.app import build_app
from scratchgpt.serve.page import MAX_SCORE_TOKENS, score_limit

from .conftest import running, serve, tiny_model

hypothesis = pytest.importorskip("hypothesis")
st = hypothesis.strategies

TIMEOUT = 1.0  # the server's --request-timeout: header and body deadlines
MAX_CONNECTIONS = 16
PAGE_ORIGIN = "http://page.example"
POSTS = ("/v1/completions", "/v1/chat/completions", "/api/generate", "/api/chat", "/api/inspect", "/api/score")
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, port, log path) of `scratchgpt serve` on a tiny model, with short deadlines."""
    folder = tmp_path_factory.mktemp("hostile")
    model, tokenizer = tiny_model()
    path = save_checkpoint(folder / "tiny.safetensors", model, tokenizer)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = folder / "server.log"
    log = open(log_path, "w")  # noqa: SIM115  # the server writes it until the fixture ends
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "scratchgpt",
            "serve",
            str(path),
            "--port",
            str(port),
            "--threads",
            "1",
            "--request-timeout",
            str(TIMEOUT),
            "--max-connections",
            str(MAX_CONNECTIONS),
            "--cors-origin",
            PAGE_ORIGIN,
        ],
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        yield url, port, log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def openai_error(response: httpx.Response) -> dict:
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    return error


def error_message(path: str, response: httpx.Response) -> str:
    """The error's message, checking its shape: OpenAI's {"error": {...}} on /v1, ollama's {"error": "..."} on /api."""
    if path.startswith("/api/"):
        error = response.json()["error"]
        assert isinstance(error, str), response.text
        return error
    return openai_error(response)["message"]


def closed_within(sock: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing sock, or None if it is still open after seconds."""
    sock.settimeout(seconds)
    received = b""
    try:
        while chunk := sock.recv(4096):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


# 1, 2: bodies that used to be 500s


@pytest.mark.parametrize("path", POSTS)
def test_json_nested_past_the_recursion_limit_is_400_in_the_apis_shape(server, path):
    url, _, _ = server
    r = httpx.post(url + path, content=b"[" * 5000 + b"]" * 5000, headers=JSON, timeout=30)
    assert r.status_code == 400 and "nested too deeply" in error_message(path, r)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/api/chat", "/api/inspect"])
def test_a_content_part_whose_text_is_not_a_string_is_400_naming_it(server, path):
    url, _, _ = server
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}
    r = httpx.post(url + path, json=body, timeout=30)
    assert r.status_code == 400 and "messages[0].content[0].text must be a string" in error_message(path, r)


# 3: cross-site requests


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
@pytest.mark.parametrize("path", ["/v1/completions", "/api/generate"])
def test_a_post_not_declared_json_is_415_as_a_web_pages_simple_request_would_be(server, path, content_type):
    url, _, _ = server
    headers = {"Content-Type": content_type} if content_type else {}
    r = httpx.post(url + path, content=json.dumps({"prompt": "a", "max_tokens": 1}), headers=headers, timeout=30)
    assert r.status_code == 415 and "application/json" in error_message(path, r)


def test_a_foreign_origin_is_403_and_the_servers_own_page_and_the_cors_origin_pass(server):
    url, port, _ = server
    body = {"prompt": "a", "max_tokens": 1, "num_predict": 1, "stream": False}
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{port + 1}"):
        r = httpx.post(f"{url}/v1/completions", json=body, headers={"Origin": origin}, timeout=30)
        assert r.status_code == 403 and openai_error(r)["code"] == "forbidden_origin"
        r = httpx.post(f"{url}/api/generate", json=body, headers={"Origin": origin}, timeout=30)
        assert r.status_code == 403 and "Origin" in error_message("/api/generate", r)
    for origin in (f"http://127.0.0.1:{port}", PAGE_ORIGIN):
        assert httpx.post(f"{url}/v1/completions", json=body, headers={"Origin": origin}, timeout=30).status_code == 200


# 4: slow clients


def test_idle_slowloris_and_half_sent_clients_are_cut_off_and_others_are_not_delayed(server):
    url, port, _ = server
    idle = connect(port)
    slowloris = connect(port)
    slowloris.sendall(b"GET /health HTTP/1.1\r\n")
    stop = threading.Event()

    def trickle():  # one header byte at a time, forever
        while not stop.wait(0.2):
            try:
                slowloris.send(b"X")
            except OSError:
                return

    threading.Thread(target=trickle, daemon=True).start()
    half_body = connect(port)
    half_body.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"prompt"'
    )
    try:
        for _ in range(3):  # the others are answered at once meanwhile
            started = time.monotonic()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            assert time.monotonic() - started < 0.5
        assert closed_within(idle, TIMEOUT + 3) == b""
        assert closed_within(slowloris, TIMEOUT + 3) == b""
        answer = closed_within(half_body, TIMEOUT + 3)
        assert answer is not None and answer.startswith(b"HTTP/1.1 408") and b"did not arrive in time" in answer
    finally:
        stop.set()
        for s in (idle, slowloris, half_body):
            s.close()


def test_past_max_connections_a_request_is_503_and_the_server_recovers(server):
    url, port, _ = server
    held = [connect(port) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        assert httpx.get(f"{url}/health", timeout=5).status_code == 503
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 5
    while httpx.get(f"{url}/health", timeout=5).status_code != 200:
        assert time.monotonic() < deadline


# 5: /api/score amplification


def test_score_bounds_its_tokens_by_the_alternatives_asked_for(server):
    url, _, _ = server
    assert score_limit(0) == MAX_SCORE_TOKENS and score_limit(20) < MAX_SCORE_TOKENS
    for top in (0, 20):
        r = httpx.post(f"{url}/api/score", json={"text": "a" * (score_limit(top) + 1), "top": top}, timeout=30)
        assert r.status_code == 400 and f"at most {score_limit(top):,}" in r.json()["error"]
    r = httpx.post(f"{url}/api/score", json={"text": "ab " * 200, "top": 20}, timeout=30)
    assert r.status_code == 200 and len(r.json()["tokens"]) == 600


def test_a_score_while_another_runs_is_503_with_retry_after_at_once():
    model, tokenizer = tiny_model()
    forward = model.forward

    def slow_forward(*args, **kwargs):
        time.sleep(1.0)
        return forward(*args, **kwargs)

    model.forward = slow_forward
    models = serve(("tiny", model, tokenizer))
    with running(build_app(models)) as url:
        first = threading.Thread(
            target=httpx.post, args=(f"{url}/api/score",), kwargs={"json": {"text": "abc"}, "timeout": 30}
        )
        first.start()
        time.sleep(0.3)
        started = time.monotonic()
        r = httpx.post(f"{url}/api/score", json={"text": "abc"}, timeout=30)
        assert time.monotonic() - started < 0.5
        assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]
        first.join()
    models.stop()


# 6: tokenizing


def test_tokenizing_a_long_prompt_does_not_stall_other_clients():
    model, tokenizer = tiny_model()
    encode = tokenizer.encode

    def slow_encode(text: str) -> list[int]:  # a megabyte of text to a BPE tokenizer takes about this long
        if len(text) > 1000:
            time.sleep(1.0)
        return encode(text)

    tokenizer.encode = slow_encode
    models = serve(("tiny", model, tokenizer))
    with running(build_app(models)) as url:
        long = threading.Thread(
            target=httpx.post, args=(f"{url}/v1/completions",), kwargs={"json": {"prompt": "a" * 5000}, "timeout": 30}
        )
        long.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert httpx.get(f"{url}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 0.5
        long.join()
    models.stop()


# 7: shutdown


def test_once_shutdown_begins_a_new_request_is_503_shutting_down_at_once():
    model, tokenizer = tiny_model()
    models = serve(("tiny", model, tokenizer))
    with running(build_app(models)) as url:
        models.stop(timeout=0)  # what the CLI's SIGTERM handler does first
        for path, body in (
            ("/v1/completions", {"prompt": "a"}),
            ("/api/generate", {"prompt": "a"}),
            ("/api/score", {"text": "abc"}),
        ):
            started = time.monotonic()
            r = httpx.post(url + path, json=body, timeout=5)
            assert time.monotonic() - started < 1.0
            assert r.status_code == 503 and "shutting down" in error_message(path, r)
            assert r.headers["retry-after"] == "1"


# 8: a client gone mid-body


def test_a_client_gone_mid_body_is_one_log_line_with_the_request_id(server):
    url, port, log_path = server
    before = log_path.read_text()
    sock = connect(port)
    sock.sendall(
        b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"prompt": "a'
    )
    time.sleep(0.1)
    sock.close()
    deadline = time.monotonic() + 5
    while "disconnected" not in log_path.read_text()[len(before) :]:
        assert time.monotonic() < deadline, log_path.read_text()[len(before) :]
        time.sleep(0.05)
    time.sleep(0.2)
    new = log_path.read_text()[len(before) :].splitlines()
    assert len(new) == 1 and re.search(r"request [0-9a-f]{12}: POST /v1/completions: the client disconnected", new[0])
    assert httpx.get(f"{url}/health", timeout=5).status_code == 200


# 9: fields that change what a client expects


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("/v1/chat/completions", "tools", [{"type": "function", "function": {"name": "f"}}]),
        ("/v1/chat/completions", "tool_choice", "auto"),
        ("/v1/chat/completions", "functions", [{"name": "f"}]),
        ("/v1/chat/completions", "response_format", {"type": "json_object"}),
        ("/v1/completions", "best_of", 3),
        ("/api/generate", "format", "json"),
        ("/api/chat", "format", {"type": "object"}),
        ("/api/chat", "tools", [{"type": "function"}]),
    ],
)
def test_a_field_that_changes_the_reply_is_400_naming_it(server, path, field, value):
    url, _, _ = server
    body = {"prompt": "a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, field: value}
    r = httpx.post(url + path, json=body, timeout=30)
    assert r.status_code == 400 and f"{field} is not supported by this server" in error_message(path, r)
    if path.startswith("/v1/"):
        assert openai_error(r)["param"] == field


def test_the_openai_client_hears_that_tools_are_not_supported(server):
    openai = pytest.importorskip("openai")
    url, _, _ = server
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="tools is not supported"):
        tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
        client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=1, tools=tools
        )
    reply = client.completions.create(model="tiny", prompt="a", max_tokens=1, best_of=1)  # the plain reply: fine
    assert reply.choices[0].finish_reason == "length"


# 10: Host and echoes


def test_a_host_whose_port_is_not_a_number_is_refused(server):
    url, _, _ = server
    for host in ("localhost:evil", "127.0.0.1:80x", "localhost:99999"):
        r = httpx.get(f"{url}/v1/models", headers={"Host": host}, timeout=5)
        assert r.status_code == 403 and openai_error(r)["code"] == "forbidden_host"
    assert httpx.get(f"{url}/v1/models", headers={"Host": "localhost:8000"}, timeout=5).status_code == 200


def test_a_huge_model_name_is_not_echoed_whole(server):
    url, _, _ = server
    for path in ("/v1/completions", "/api/generate"):
        r = httpx.post(url + path, json={"model": "m" * 500_000, "prompt": "a"}, timeout=30)
        assert r.status_code == 400 and len(error_message(path, r)) < 300 and "is not served here" in r.text


# Every POST endpoint, random JSON in its fields: never a 5xx

FIELDS = {
    "/v1/completions": (
        "model prompt max_tokens temperature top_p top_k seed stop echo logprobs n stream stream_options best_of"
    ).split(),
    "/v1/chat/completions": (
        "model messages max_tokens max_completion_tokens temperature logprobs top_logprobs stop stream n seed tools"
    ).split(),
    "/api/generate": ["model", "prompt", "system", "options", "stream", "format"],
    "/api/chat": ["model", "messages", "options", "stream", "format"],
    "/api/inspect": ["model", "text", "messages"],
    "/api/score": ["model", "text", "top", "messages"],
}
SMALL_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 40) | st.floats(width=32) | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                ["role", "content", "type", "text", "name", "temperature", "num_predict", "top_k", "include_usage"]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=8,
)


@pytest.mark.slow
@pytest.mark.parametrize("path", POSTS)
def test_random_json_in_any_field_is_never_a_5xx(server, path):
    url, _, _ = server
    base = {
        "model": "tiny",
        "prompt": "ab",
        "text": "abc",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 2,
        "options": {"num_predict": 2},
        "stream": False,
    }

    @hypothesis.settings(
        max_examples=25, deadline=None, database=None, suppress_health_check=list(hypothesis.HealthCheck)
    )
    @hypothesis.given(st.dictionaries(st.sampled_from(FIELDS[path]), SMALL_JSON, min_size=1, max_size=3))
    def post(changes):
        body = {**base, **changes}
        # json.dumps writes NaN and Infinity, which Python's json.loads (the server's) reads
        r = httpx.post(url + path, content=json.dumps(body), headers=JSON, timeout=60)
        assert r.status_code < 500, (body, r.text)
        if r.status_code >= 400:
            error_message(path, r)

    post()


def test_the_log_shows_no_traceback_for_anything_clients_did(server):
    _, _, log_path = server
    assert "Traceback" not in log_path.read_text()
