"""The page at / in a real headless Chromium (the Debian package, driven by Playwright):
search as you type, build a history, get recommendations with reasons; and one error shown.

Set RECLLM_SCREENSHOT=docs/serve-page.png to keep the screenshot of the recommendations."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time

import pytest

pytestmark = pytest.mark.browser
CHROMIUM = "/usr/bin/chromium"
ANSWER = "1. Fargo (1996)\n2. Star Wars (1977)\n3. Braveheart (1995)"
REASONS = {"user:why:8": "A dark, funny crime story, like the ones you liked.",
           "user:why:7": "Adventure and wonder, as in Toy Story.",
           "user:why:11": "An epic, if you want something bigger."}


@pytest.fixture
def server(tiny_dataset):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api")
    import uvicorn

    from recllm.recommend import Recommender, RecommendSettings
    from recllm.serve import create_app

    rec = Recommender(tiny_dataset, RecommendSettings(backend="scripted", backend_options={
        "answers": REASONS, "default": ANSWER}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(create_app(rec), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def test_page_happy_path_and_an_error(server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 760, "height": 620})
        page.goto(server + "/")
        for typed, pick in (("toy", "Toy Story (1995)"), ("heat", "Heat (1995)")):
            page.fill("#search", typed)
            page.locator("#results li", has_text=pick).click()
        expect(page.locator("#history li")).to_have_count(2)
        page.fill("#k", "3")
        page.click("#go")
        recs = page.locator("#recs li")
        expect(recs).to_have_count(3)
        expect(recs.nth(0)).to_contain_text("Fargo (1996)")
        expect(recs.nth(0).locator(".reason")).to_have_text(REASONS["user:why:8"])
        expect(page.locator("#error")).to_be_empty()
        shot = tmp_path / "page.png"
        page.screenshot(path=str(shot), full_page=True)
        if os.environ.get("RECLLM_SCREENSHOT"):
            shutil.copy(shot, os.environ["RECLLM_SCREENSHOT"])
        page.fill("#k", "0")  # the server refuses it; the page says why
        page.click("#go")
        expect(page.locator("#error")).to_contain_text("k:")
        expect(recs).to_have_count(0)
        browser.close()
