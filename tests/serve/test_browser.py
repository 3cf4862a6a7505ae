"""The page end to end in a real browser: headless Chromium (the system package, `make browser-deps`)
driven by Playwright, against the server on a free loopback port with the real shipped QA model.

Skips when Playwright or Chromium is missing, unless BERTFORGE_REQUIRE_BROWSER=1 (CI sets it: there
they must run). Nothing is installed at run time. BERTFORGE_DOCS_SCREENSHOT=DIR also writes the page's
screenshot to DIR/serve_page.png (how docs/img/serve_page.png is made).
"""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import httpx
import pytest

from bertforge.serve import DocsBackend, Engine, ServeConfig, create_app, serve_in_thread

from .helpers import PARAGRAPHS, demo_passage

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000  # a busy shared CPU: model calls can take seconds


def chromium_path() -> Optional[str]:
    return os.environ.get("BERTFORGE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    """Chromium from the system, launched by Playwright (each launch gets a fresh temporary profile)."""
    def missing(why: str):
        message = f"{why}: `make browser-deps` installs it"
        if os.environ.get("BERTFORGE_REQUIRE_BROWSER") == "1":
            pytest.fail(message + " (BERTFORGE_REQUIRE_BROWSER=1: the browser tests must run here)")
        pytest.skip(message)

    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed")
    path = chromium_path()
    if path is None:
        missing("no chromium on PATH")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Passage:
    text: str
    start: int
    line: int


@dataclass
class DocAnswer:
    """What bertforge.retrieval's ask_docs returns (its agreed fields, and the passage)."""

    text: str
    probability: float
    file: str
    line: int
    sentence: str
    start: int
    end: int
    passage: Passage


NOTE = "# Notes\n\n" + PARAGRAPHS[-1][0]  # a document: the Python paragraph under a title
NOTE_AT = NOTE.index("Guido van Rossum")


def fake_ask(answerer, index, question, top_k=1, top_passages=5):
    """A document index of one note: every question is answered from it (the page's rendering is the
    point here; tests/serve/test_answers.py checks the real retrieval)."""
    text = "Guido van Rossum"
    return [DocAnswer(text, 0.9, "notes/python.md", 3, "**Guido van Rossum** began working on Python", NOTE_AT,
                      NOTE_AT + len(text), Passage(NOTE[9:], 9, 3))][:top_k]


@pytest.fixture(scope="module")
def server(real_qa, tiny_models):
    from bertforge.cli.pretrain import load_mlm

    engine = Engine(qa=real_qa, mlm=load_mlm(tiny_models["mlm"]), docs=DocsBackend(index=None, ask=fake_ask),
                    names={"qa": "qa-minilm"})
    with serve_in_thread(create_app(engine, ServeConfig())) as url:
        yield url


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("console", lambda m: problems.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(server + "/")
    # wait for /api/info (no wait_for_function: the CSP forbids eval)
    page.wait_for_selector("#top-k option", state="attached")
    yield page
    context.close()
    assert not problems, problems  # no JavaScript error, no script blocked by the CSP


def ask(page, context: str, question: str, top_k: int = 3) -> None:
    page.fill("#context", context)
    page.fill("#question", question)
    page.select_option("#top-k", str(top_k))
    page.click("#ask")
    page.wait_for_selector("#answers li, #no-answer:not([hidden]), #error:not([hidden])")


def screenshot(page, tmp_path: Path, name: str = "serve_page.png") -> Path:
    """Into the test's tmp dir, and into BERTFORGE_DOCS_SCREENSHOT when set (docs/img/serve_page.png)."""
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    if os.environ.get("BERTFORGE_DOCS_SCREENSHOT"):
        out = Path(os.environ["BERTFORGE_DOCS_SCREENSHOT"]) / name
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out)
    return path


def test_ask_shows_the_answers_and_highlights_the_best(page, reference_qa, tmp_path):
    passage = demo_passage()
    question = "What does BERT stand for?"
    ask(page, passage, question, top_k=3)
    want = reference_qa.answer(question, passage, top_k=3)
    items = page.locator("#answers li")
    assert items.count() == 3
    for i, a in enumerate(want):
        assert items.nth(i).locator(".text").inner_text() == a.text
        assert items.nth(i).locator(".prob").inner_text() == f"{100 * a.probability:.1f}%"
    assert page.inner_text("#answer-mark") == want[0].text
    assert page.inner_text("#context-view") == passage.strip("\n") or page.inner_text("#context-view") == passage
    assert "selected" in items.nth(0).get_attribute("class")
    page.locator("#health", has_text=re.compile(r"served · [1-9]")).wait_for()  # refreshed after the answer
    page.locator("#context").evaluate("e => { e.scrollTop = 0; }")
    screenshot(page, tmp_path)
    items.nth(1).click()  # another answer: its span is highlighted instead
    assert page.inner_text("#answer-mark") == want[1].text
    assert page.locator("mark").count() == 1


def test_the_known_answer_is_highlighted(page):
    context, questions = PARAGRAPHS[-1]
    ask(page, context, "Who created Python?", top_k=1)
    assert page.inner_text("#answer-mark") == "Guido van Rossum"
    assert "1 answer in" in page.inner_text("#status")


def test_a_script_in_the_context_shows_as_text(page):
    context = ('<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> \U0001F600 '
               "The lab was founded by Ada Lovelace in 1843 in London.")
    ask(page, context, "Who founded the lab?", top_k=2)
    view = page.locator("#context-view")
    assert view.locator("script, img").count() == 0 and page.locator("img").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert "<script>window.__pwned = 1</script>" in view.inner_text()
    api = httpx.post(page.url.rstrip("/") + "/api/qa", json={"question": "Who founded the lab?", "context": context,
                                                             "top_k": 2}).json()
    best = api["answers"][0]
    assert page.inner_text("#answer-mark") == best["text"]  # offsets count characters: the emoji does not shift it
    assert list(context)[best["start"]:best["end"]] == list(best["text"])


def test_no_answer_is_shown_as_such(page):
    page.route("**/api/qa", lambda route: route.fulfill(
        status=200, content_type="application/json",
        body='{"question": "What colour is the sky?", "source": "context", "answers": [], '
             '"no_answer_probability": 0.912}'))
    ask(page, "Paris is in France.", "What colour is the sky?")
    assert page.is_visible("#no-answer")
    assert page.inner_text("#no-answer") == "No answer found in this text (no-answer probability 91.2%)."
    assert page.is_hidden("#results") and page.inner_text("#status").startswith("no answer")


def test_server_errors_show_their_message(page):
    page.route("**/api/qa", lambda route: route.fulfill(
        status=503, content_type="application/json",
        body='{"error": "overloaded", "message": "the server is busy: try again in a moment", "status": 503}'))
    ask(page, "Paris is in France.", "Where is Paris?")
    assert page.inner_text("#error") == "the server is busy: try again in a moment"
    page.fill("#question", "  ")
    page.click("#ask")
    assert page.inner_text("#error") == "Type a question first."


def test_my_documents_show_the_source(page):
    page.check("#source-docs")
    assert page.is_disabled("#context")
    page.fill("#question", "Who created Python?")
    page.click("#ask")
    page.wait_for_selector("#answers li")
    assert page.inner_text("#answers li .source") == "notes/python.md:3"
    assert page.inner_text("#context-view .where") == "notes/python.md:3"
    assert page.inner_text("#answer-mark") == "Guido van Rossum"
    assert page.inner_text("#view-title") == "In your documents"


def test_the_attention_tab_draws_the_explorer(page, server, tmp_path):
    text = "The cat sat on the mat because it was tired."
    data = httpx.post(server + "/api/attention", json={"text": text}, timeout=60).json()
    T = len(data["tokens"])
    page.click("#tab-attention")
    assert page.is_visible("#panel-attention") and page.is_hidden("#panel-ask")
    page.fill("#attn-text", text)
    page.click("#attn-go")
    frame = page.frame_locator("#attn-frame")
    frame.locator("#grid tr").nth(T).wait_for()
    assert frame.locator("#grid tr").count() == T + 1  # a header row + one row per token
    assert frame.locator("#grid td").count() == T * T
    assert frame.locator("#layer option").count() == data["layers"]
    assert frame.locator("#head option").count() == data["heads"] + 1  # + "mean"
    assert frame.locator("#tokens span").all_inner_texts() == data["tokens"]
    # the cells are the probabilities: row "cat" of layer 0, mean over heads
    cat = data["tokens"].index("cat")
    shades = frame.locator("#grid tr").nth(cat + 1).locator("td").evaluate_all("tds => tds.map(td => td.title)")
    mean = [sum(h[cat][j] for h in data["attentions"][0]) / data["heads"] for j in range(T)]
    assert [float(s.rsplit(": ", 1)[1]) for s in shades] == pytest.approx(mean, abs=2e-4)
    frame.locator("#tokens span").nth(cat).hover()
    assert "\u201ccat\u201d attends most to" in frame.locator("#info").inner_text()
    screenshot(page, tmp_path, "serve_attention.png")
    frame.locator("#layer").select_option("5")
    frame.locator("#head").select_option("3")
    first = frame.locator("#grid tr").nth(1).locator("td").first.get_attribute("title")
    assert first.endswith(f"{data['attentions'][5][3][0][0]:.4f}")


def test_the_fill_mask_tab(page, server):
    text = "Paris is the [MASK] of [MASK]."
    data = httpx.post(server + "/api/fill-mask", json={"text": text, "top_k": 4}, timeout=60).json()
    page.click("#tab-fill")
    assert page.is_hidden("#mask-off")
    page.fill("#mask-text", text)
    page.select_option("#mask-top-k", "4")
    page.click("#mask-go")
    page.wait_for_selector("#mask-results .mask")
    boxes = page.locator("#mask-results .mask")
    assert boxes.count() == 2
    for i, m in enumerate(data["masks"]):
        assert boxes.nth(i).locator(".token").all_inner_texts() == [c["token"] for c in m["candidates"]]
