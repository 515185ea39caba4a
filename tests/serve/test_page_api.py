"""The page's own calls below the browser: the page's response, /api/inspect and /api/score, and the
window a long text is inspected in."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import pytest
import torch

from scratchgpt.cli.inspect_view import BANDS
from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.model.inspection import inspect_text, score_text
from scratchgpt.serve import page
from scratchgpt.serve.common import chat_text
from scratchgpt.serve.page import inspect_window, window_tail
from scratchgpt.tokenizers import fit_tokenizer

from .conftest import API_KEY

BLOCK = 24


@pytest.fixture(scope="module")
def char_model(shakespeare_text):
    tokenizer = fit_tokenizer("char", [shakespeare_text[:5_000]])
    torch.manual_seed(0)
    model = build_model(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=BLOCK, n_layer=2, n_head=2, n_embd=16))
    return model.eval(), tokenizer


def test_a_text_within_the_window_is_inspected_whole(char_model):
    _, tokenizer = char_model
    assert window_tail(tokenizer, "ROMEO:", BLOCK) == ("ROMEO:", 0)


def test_a_text_longer_than_the_window_keeps_its_last_window(char_model, shakespeare_text):
    _, tokenizer = char_model
    text = shakespeare_text[:100]
    tail, cropped = window_tail(tokenizer, text, BLOCK)
    assert tail == text[-BLOCK:] and cropped == 100 - BLOCK


def test_a_bpe_tail_fits_the_window_after_re_encoding():
    tokenizer = fit_tokenizer("tiktoken", [])
    text = "The quick brown fox jumps over the lazy dog; naïve café, déjà vu. " * 10
    tail, cropped = window_tail(tokenizer, text, BLOCK)
    assert text.endswith(tail) or tokenizer.encode(tail) == tokenizer.encode(text)[-BLOCK:]
    assert len(tokenizer.encode(tail)) <= BLOCK
    assert cropped == len(tokenizer.encode(text)) - len(tokenizer.encode(tail))


def test_inspecting_a_long_context_looks_at_its_last_window(char_model, shakespeare_text):
    model, tokenizer = char_model
    result = inspect_window(model, tokenizer, shakespeare_text[:60])
    assert result["cropped"] == 60 - BLOCK
    assert "".join(t["token"] for t in result["tokens"]) == shakespeare_text[60 - BLOCK : 60]
    assert len(result["attention"]) == 2 and len(result["attention"][0][0]) == BLOCK
    assert len(result["lens"]) == 3


# --- the routes, over HTTP, on the shared server (tests/serve/conftest.py; it asks for API_KEY) ---


def post(base_url: str, path: str, body: dict, key: str | None = API_KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(base_url + path, json=body, headers=headers, timeout=30)


def test_the_page_is_served_without_a_key_under_a_policy_naming_its_script(base_url):
    response = httpx.get(base_url + "/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    script = re.search(r"<script>(.*?)</script>", response.text, flags=re.DOTALL).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}';" in policy and "connect-src 'self'" in policy
    assert "http://" not in script and "https://" not in script  # nothing fetched from another host


def test_the_page_bands_are_the_repl_probs_bands(base_url):
    html = httpx.get(base_url + "/").text
    rows = re.findall(r'\[([\d.]+), "(#[0-9a-f]{6})", "(\w+)", "([^"]+)"\]', html)
    assert [(float(low), bg, fg, label) for low, bg, fg, label in rows] == list(BANDS)


def test_inspect_gives_the_inspect_json_of_the_context(base_url, served):
    response = post(base_url, "/api/inspect", {"model": "tiny", "text": "ROMEO:"})
    assert response.status_code == 200
    result = response.json()
    model, tokenizer = served[1].get("tiny").engine.model, served[1].get("tiny").tokenizer
    assert result == {**inspect_text(model, tokenizer, "ROMEO:", top=5), "cropped": 0}


def test_inspect_frames_chat_messages_as_the_chat_endpoint_does(base_url, served):
    messages = [{"role": "user", "content": "Hello"}]
    result = post(base_url, "/api/inspect", {"model": "tiny", "messages": messages, "text": "Hi"}).json()
    framed = chat_text(messages, served[1].get("tiny").speakers) + "Hi"
    assert "".join(t["token"] for t in result["tokens"]) == framed


def test_score_gives_the_score_json_of_the_text(base_url, served):
    text = "To be, or not to be"
    result = post(base_url, "/api/score", {"model": "tiny", "text": text, "top": 3}).json()
    served_model = served[1].get("tiny")
    assert result == score_text(served_model.engine.model, served_model.tokenizer, text, top=3)
    assert all(len(t["top_logprobs"]) == 3 for t in result["tokens"][1:])


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/api/score", {"model": "tiny", "text": "x"}, "at least two"),
        ("/api/score", {"model": "tiny", "text": "abc", "top": 21}, "top must be"),
        ("/api/score", {"model": "tiny", "text": 5}, "text must be a string"),
        ("/api/inspect", {"model": "nope", "text": "abc"}, "not served here"),
        ("/api/inspect", {"model": "tiny", "text": ""}, "empty"),
        ("/api/inspect", {"model": "tiny", "messages": "hi"}, "messages must be"),
    ],
)
def test_bad_requests_get_one_clear_line(base_url, path, body, says):
    response = post(base_url, path, body)
    assert response.status_code == 400 and says in response.json()["error"]


def test_the_page_calls_need_the_key(base_url):
    for path in ("/api/inspect", "/api/score"):
        assert post(base_url, path, {"model": "tiny", "text": "abc"}, key=None).status_code == 401


def test_a_text_too_long_for_the_page_is_refused(base_url, monkeypatch):
    monkeypatch.setattr(page, "MAX_SCORE_TOKENS", 10)
    response = post(base_url, "/api/score", {"model": "tiny", "text": "a" * 11})
    assert response.status_code == 400 and "scratchgpt score" in response.json()["error"]
