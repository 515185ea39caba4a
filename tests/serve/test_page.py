"""The page at `/` in a real browser: Debian's chromium driven by playwright, against a real server
(uvicorn on a free port) with a tiny model. Without the browser these tests skip, saying why."""

from __future__ import annotations

import shutil

import httpx
import pytest
import torch

from scratchgpt.model.gpt import GPTConfig, build_model
from scratchgpt.serve.app import build_app
from scratchgpt.tokenizers.char import CharTokenizer

from .conftest import CHARS, running, serve

KEY = "page-test-key"
N_LAYER, N_HEAD = 2, 2


def _browser_path() -> str:
    """Debian's chromium, or the reason these tests skip."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("the page's browser tests need playwright (pip install -e '.[test]')")
    path = shutil.which("chromium")
    if not path:
        pytest.skip("the page's browser tests need Debian's chromium on PATH (apt-get install chromium)")
    return path


@pytest.fixture(scope="module")
def browser():
    path = _browser_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path)
        yield browser
        browser.close()


def spread_model():
    """An untrained 2-layer char model whose head is scaled up, so that its probabilities spread over
    several orders of magnitude (an untrained one gives every character about 1/60) and shade apart."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer(CHARS)
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=256, n_layer=N_LAYER, n_head=N_HEAD, n_embd=32)
    model = build_model(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(12.0)
    return model, tokenizer


@pytest.fixture(scope="module")
def models():
    models = serve(("spread", *spread_model()))
    yield models
    models.stop()


@pytest.fixture(scope="module")
def server(models):
    with running(build_app(models)) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_server(models):
    with running(build_app(models, api_key=KEY)) as url:
        yield url


class Page:
    """A fresh browser tab on the page, recording console errors and every URL it asked for."""

    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.tab = self.context.new_page()
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.tab.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.tab.on("pageerror", lambda e: self.errors.append(str(e)))
        self.tab.on("request", lambda r: self.requests.append(r.url))
        self.tab.goto(url + "/")

    def wait_for_models(self) -> None:
        # locators, not wait_for_function: the page's content-security policy forbids evaluating strings
        self.tab.locator("#model option").first.wait_for(state="attached", timeout=10_000)

    def ask(self, prompt: str, *, length: int = 60, temperature: float = 1.0, mode: str = "continue") -> None:
        """Type a prompt and Enter in a mode (continue or chat), then wait until the reply has finished streaming."""
        self.tab.check(f"input[name=mode][value={mode}]")
        self.tab.fill("#max-tokens", str(length))
        self.tab.fill("#temperature", str(temperature))
        self.tab.fill("#seed", "3")
        self.tab.fill("#prompt", prompt)
        self.tab.press("#prompt", "Enter")
        self.tab.locator("#transcript[aria-busy=false]").wait_for(state="attached", timeout=20_000)

    def reply_tokens(self):
        return self.tab.locator("#transcript .turn.model .tok")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, server):
    opened = Page(browser, server)
    opened.wait_for_models()
    yield opened
    opened.close()


def test_page_loads_with_no_console_errors_and_nothing_from_another_host(page, server):
    assert page.tab.locator("#model option").count() == 1
    assert page.tab.locator("#legend span").count() == 5
    assert page.errors == []
    assert page.requests and all(url.startswith(server) for url in page.requests)


def test_a_typed_prompt_streams_in_over_several_updates(page):
    # record the number of tokens shown each time the reply grows while the request is still open
    page.tab.evaluate("""() => {
        window.seenWhileBusy = [];
        new MutationObserver(() => {
            if (document.getElementById('transcript').getAttribute('aria-busy') === 'true')
                window.seenWhileBusy.push(document.querySelectorAll('#transcript .tok').length);
        }).observe(document.getElementById('transcript'), { childList: true, subtree: true });
    }""")
    page.ask("ROMEO:", length=150)
    seen = page.tab.evaluate("window.seenWhileBusy")
    assert len({n for n in seen if n > 0}) >= 2, f"the reply arrived in one piece: {seen}"
    assert page.reply_tokens().count() == 150
    assert page.tab.locator("#send").inner_text() == "Send"
    assert "150 tokens" in page.tab.locator("#talk-status").inner_text()
    assert page.errors == []


def test_tokens_carry_their_probabilities_in_several_shades(page):
    page.ask("JULIET:", length=80, mode="chat")
    tokens = page.reply_tokens()
    labels = tokens.evaluate_all("spans => spans.map(s => s.getAttribute('aria-label'))")
    assert all(" probability " in label for label in labels)
    shades = set(tokens.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)"))
    assert len(shades) >= 4, shades
    # the text shown is the reply's text: the tokens joined
    shown = "".join(tokens.evaluate_all("spans => spans.map(s => s.textContent)"))
    assert page.tab.evaluate("conversation.messages[conversation.messages.length - 1].content") == shown


def test_resting_on_a_token_shows_its_alternatives_with_the_chosen_one_marked(page):
    page.ask("KING:", length=20, temperature=0)
    token = page.reply_tokens().nth(3)
    token.hover()
    popover = page.tab.locator("#popover")
    popover.wait_for(state="visible")
    rows = popover.locator("tbody tr")
    assert rows.count() == 10  # the "alternatives shown" setting
    assert "◀ chosen" in rows.nth(0).inner_text()  # greedy: the chosen token is the likeliest
    text = popover.inner_text()
    assert "entropy" in text and "surprisal" in text
    probs = rows.evaluate_all("trs => trs.map(tr => Math.exp(Number(tr.lastElementChild.textContent)))")
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 1e-2
    page.tab.mouse.move(0, 0)
    popover.wait_for(state="hidden")


def test_the_keyboard_reaches_a_token_and_opens_its_alternatives(page):
    page.ask("KING:", length=10)
    page.tab.focus("#transcript .turn.model")
    page.tab.keyboard.press("ArrowRight")
    page.tab.keyboard.press("ArrowRight")
    focused = page.tab.evaluate("document.activeElement.dataset.index")
    assert focused == "1"
    assert page.tab.locator("#popover").is_visible()


def test_clicking_a_token_shows_the_attention_grid_and_the_logit_lens(page):
    page.ask("QUEEN:", length=30)
    page.reply_tokens().nth(10).click()
    page.tab.locator("#inspector-body").wait_for(state="visible", timeout=10_000)
    shape = page.tab.evaluate(
        "[inspection.data.attention.length, inspection.data.attention[0].length,"
        " inspection.data.attention[0][0].length, inspection.data.lens.length]"
    )
    prompt_tokens = len("QUEEN:")  # a char model; the chat format adds the speakers around it
    assert shape[:2] == [N_LAYER, N_HEAD] and shape[2] > prompt_tokens and shape[3] == N_LAYER + 1
    # the canvas has ink: some pixel of the grid is darker than the page
    dark = page.tab.evaluate("""() => {
        const c = document.getElementById('attention');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] < 128) n++;
        return n;
    }""")
    assert dark > 0
    assert page.tab.locator("#lens tr").count() == N_LAYER + 1
    assert "looks most at" in page.tab.locator("#head-caption").inner_text()
    assert page.errors == []


def test_the_page_asks_for_the_api_key_once(browser, keyed_server):
    opened = Page(browser, keyed_server)
    try:
        dialog = opened.tab.locator("#key-dialog")
        dialog.wait_for(state="visible", timeout=10_000)
        opened.tab.fill("#key-input", KEY)
        opened.tab.click("#key-ok")
        opened.wait_for_models()
        opened.ask("ROMEO:", length=20)
        assert opened.reply_tokens().count() == 20
        opened.tab.reload()
        opened.wait_for_models()  # the key is kept for the tab: no second question
        assert not dialog.is_visible()
        assert opened.tab.evaluate("sessionStorage.getItem('scratchgpt-api-key')") == KEY
    finally:
        opened.close()


def test_scoring_a_pasted_text_shades_it_and_gives_bits_per_char(page, server):
    text = "To be, or not to be, that is the question."
    page.tab.click("#tab-score")
    page.tab.fill("#score-text", text)
    page.tab.click("#score-button")
    page.tab.locator("#score-result .tok").first.wait_for(timeout=10_000)
    assert page.tab.locator("#score-result .tok").count() == len(text)
    expected = httpx.post(server + "/api/score", json={"model": page.tab.input_value("#model"), "text": text}).json()
    assert f"{expected['bits_per_char']:.3f}" in page.tab.locator("#score-summary").inner_text()
    assert page.tab.locator("#score-summary tbody").nth(1).locator("tr").count() == 5
    assert page.errors == []
