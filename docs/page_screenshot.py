"""Take docs/page.png: `scratchgpt serve` with the shipped char model, a real reply in the page, one token
rested on (its alternatives) and one clicked (attention and the logit lens), in headless chromium.

    python docs/page_screenshot.py [--url URL] [--out docs/page.png]

Without --url it starts the server itself on a free port. Needs Debian's chromium and playwright.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

PROMPT = "ROMEO:\n"


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "scratchgpt", "serve", "--port", str(port)])
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the server did not come up within a minute")


def shoot(url: str, out: Path) -> None:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"))
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url + "/")
        page.locator("#model option").first.wait_for(state="attached")
        page.check("input[name=mode][value=continue]")
        page.fill("#max-tokens", "160")
        page.fill("#temperature", "0.8")
        page.fill("#seed", "7")
        page.fill("#prompt", PROMPT)
        page.press("#prompt", "Enter")
        page.locator("#transcript[aria-busy=false]").wait_for(state="attached", timeout=60_000)
        page.click("#settings summary")  # fold the settings: room for the attention grid and the lens
        tokens = page.locator("#transcript .turn.model .tok")
        tokens.nth(min(40, tokens.count() - 1)).click()
        page.locator("#inspector-body").wait_for(state="visible", timeout=60_000)
        tokens.nth(min(12, tokens.count() - 1)).hover()
        page.locator("#popover").wait_for(state="visible")
        page.screenshot(path=str(out))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running server (default: start one with the shipped char model)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("page.png"), help="the PNG to write")
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_server()
    try:
        shoot(url, args.out)
    finally:
        if process:
            process.terminate()
            process.wait(10)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
