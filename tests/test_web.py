"""The web page in headless Chromium against the real server (`manyminds serve` in a subprocess):
asking a question end to end, the member columns streaming, the verdict and the agreement view,
the run history, errors, and model text shown as text (never run as HTML).

Set MANYMINDS_UPDATE_SCREENSHOT=1 to copy the local council's screenshot to docs/web.png.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("selenium")
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from manyminds.testing import Behaviour, FakeOpenAIServer

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REPO = Path(__file__).resolve().parents[1]
XSS_MEMBER = 'Shakespeare <img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
XSS_ANSWER = 'It is in Paris <script>window.__xss=3</script><img src=x onerror="window.__xss=4"> and made of iron [1].'

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="needs chromium and chromedriver"
)


# --- the server and the browser ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(log_path: Path, *args: str):
    """`manyminds serve` on a free loopback port, with the test's MANYMINDS_HOME; its base URL."""
    port = free_port()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "manyminds.cli", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ),
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"manyminds serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"manyminds serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,800",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        set_viewport(driver, 1280, 800)
        yield driver
    finally:
        driver.quit()


def set_viewport(driver, width: int, height: int) -> None:
    """Size the window so that the page itself gets `width` × `height` (the window's frame
    takes some of a window size)."""
    driver.set_window_size(width, height)
    inner_w, inner_h = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(2 * width - inner_w, 2 * height - inner_h)


def wait(driver, condition, timeout: float = 30, message: str = ""):
    try:
        # The page replaces lists (history, councils) as data arrives: a stale element just means "look again".
        return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException:
        page = driver.find_element(By.TAG_NAME, "body").text[-3000:]
        raise AssertionError(f"timed out waiting for {message or condition}; the page shows:\n{page}") from None


def visible(driver, css: str) -> bool:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return bool(found) and found[0].is_displayed()


def open_page(driver, base: str) -> None:
    driver.get(base + "/")
    # The council list has arrived (the placeholder option is replaced).
    wait(driver, lambda d: d.execute_script("return document.querySelector('#council option').value") != "", 30, "the councils")


def ask(driver, question: str, council: str | None = None) -> None:
    if council:
        Select(driver.find_element(By.ID, "council")).select_by_value(council)
    box = driver.find_element(By.ID, "question")
    box.clear()
    box.send_keys(question)
    driver.find_element(By.ID, "ask-button").click()


def wait_for_verdict(driver, timeout: float = 60) -> None:
    wait(driver, lambda d: visible(d, "#verdict-section") or visible(d, "#error"), timeout, "the verdict")
    if visible(driver, "#error"):
        raise AssertionError("the run failed: " + driver.find_element(By.ID, "error").text)


def columns(driver) -> dict[str, dict]:
    """Each member column: status, delta count, text, short answer, error, meta."""
    out = {}
    for node in driver.find_elements(By.CSS_SELECTOR, "#members .member"):
        out[node.get_attribute("data-member")] = {
            "status": node.get_attribute("data-status"),
            "deltas": int(node.get_attribute("data-deltas") or 0),
            "text": node.find_element(By.CSS_SELECTOR, ".member-text").text,
            "error": node.find_element(By.CSS_SELECTOR, ".member-error").get_attribute("textContent"),
            "meta": node.find_element(By.CSS_SELECTOR, ".meta").text,
        }
    return out


def stances(driver, row_css: str) -> list[str]:
    return [td.get_attribute("data-stance") for td in driver.find_elements(By.CSS_SELECTOR, f"{row_css} td[data-stance]")]


def no_horizontal_scroll(driver) -> bool:
    return driver.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def console_errors(driver) -> list[str]:
    """Script errors and failed requests the page logged."""
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def full_page_screenshot(driver, path: Path) -> None:
    """The whole page at the window's width (a plain screenshot stops at the viewport)."""
    # Capturing beyond the viewport lays the page out without a scroll bar: the full window width.
    width = driver.execute_script("return window.innerWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
    })
    path.write_bytes(base64.b64decode(shot["data"]))


# --- a council on a loopback OpenAI-compatible server, and a stored run with claims -----------


@pytest.fixture
def fake():
    with FakeOpenAIServer({
        "alpha": Behaviour(text="William Shakespeare wrote Hamlet.", token_delay=0.05),
        "beta": Behaviour(text=XSS_MEMBER, token_delay=0.05),
        "gamma": Behaviour.error(401, "Incorrect API key provided"),
        "down": Behaviour.error(500, "upstream exploded"),
        "tall": Behaviour(text="The Eiffel Tower is 330 metres tall."),
    }) as srv:
        yield srv


def write_settings(home: Path, server: FakeOpenAIServer) -> None:
    lines = ['default_council = "fake"', "", "[providers.fake]", f'base_url = "{server.base_url}"', ""]
    councils = {"fake": ["alpha", "beta", "gamma"], "broken": ["gamma", "down"], "tower": ["tall", "alpha"]}
    for name, members in councils.items():
        lines += [f"[councils.{name}]", "quorum = 2", "timeout = 20", "retries = 0", 'short_answer = "heuristic"']
        for m in members:
            lines += [f"[[councils.{name}.members]]", f'name = "{m}"', f'model = "fake/{m}"']
        lines.append("")
    (home / "settings.toml").write_text("\n".join(lines))


def store_run_with_claims(home: Path) -> str:
    """A finished run whose verdict has a claims × members matrix, evidence and a citation, as
    the claims stage writes it — and an answer that tries to inject HTML."""
    from manyminds.pipeline.verdict import (
        Agreement,
        Citation,
        Claim,
        ClaimMatrix,
        Cluster,
        Dissent,
        Evidence,
        MemberAnswer,
        UsageOut,
        Verdict,
    )
    from manyminds.ids import new_ulid
    from manyminds.store import RunRecorder, open_db

    members = ["alpha", "beta", "gamma"]
    question = "Where is the Eiffel Tower and what is it made of?"
    run_id = new_ulid()
    recorder = RunRecorder(open_db(home / "manyminds.db"))
    recorder.start(question, "fake", members=members, run_id=run_id,
                   settings_snapshot={"name": "fake", "members": [{"name": m, "model": f"fake/{m}"} for m in members]})
    answers = [
        MemberAnswer(member="alpha", model="fake/alpha", status="ok", text="In Paris; it is made of wrought iron.",
                     short_answer="Paris", latency_s=1.2, usage=UsageOut(input_tokens=20, output_tokens=9, total_tokens=29)),
        MemberAnswer(member="beta", model="fake/beta", status="ok", text="Paris, France.", short_answer="Paris",
                     latency_s=0.8, usage=UsageOut(input_tokens=20, output_tokens=3, total_tokens=23)),
        MemberAnswer(member="gamma", model="fake/gamma", status="ok", text="It stands in Lyon.", short_answer="Lyon",
                     latency_s=1.0, usage=UsageOut(input_tokens=20, output_tokens=4, total_tokens=24)),
    ]
    claims = ClaimMatrix(members=members, claims=[
        Claim(id="c1", text="The Eiffel Tower is in Paris.", status="contested",
              stances={"alpha": "supports", "beta": "supports", "gamma": "contradicts"},
              wordings={"alpha": "In Paris", "beta": "Paris, France", "gamma": "It stands in Lyon"},
              evidence=[Evidence(verdict="supported", document="https://example.org/eiffel", location="§ History",
                                 quote="located on the Champ de Mars in Paris")],
              evidence_verdict="supported"),
        Claim(id="c2", text="It is made of <b>wrought iron</b>.", status="unique",
              stances={"alpha": "supports", "beta": "silent", "gamma": "silent"}),
    ])
    verdict = Verdict(
        run_id=run_id, question=question, council="fake", answer=XSS_ANSWER, short_answer="Paris",
        confidence=0.67, confidence_explanation="2 of 3 members (alpha, beta) gave an equivalent answer.",
        agreement=Agreement(members=members, matrix=[[1, 1, 0], [1, 1, 0], [0, 0, 1]], clusters=[
            Cluster(id=0, answer="Paris", members=["alpha", "beta"], weight=2, share=2 / 3),
            Cluster(id=1, answer="Lyon", members=["gamma"], weight=1, share=1 / 3)]),
        dissent=[Dissent(answer="Lyon", members=["gamma"], share=1 / 3)],
        members=answers, chair=None, usage=UsageOut(input_tokens=60, output_tokens=16, total_tokens=76),
        cost_usd=None, timings={"fan_out": 1.2, "claims": 0.4, "synthesize": 0.6, "total": 2.3},
        claims=claims,
        citations=[Citation(id=1, document="docs/tower.pdf", location="page 3", quote="built of puddled iron", claim_ids=["c2"])],
        follow_ups=["How tall is the Eiffel Tower?"],
    )
    recorder.finish(run_id, verdict)
    return run_id


# --- the tests ----------------------------------------------------------------------------------


@pytest.fixture
def page(manyminds_home, fake, browser, tmp_path):
    """The page of a server whose settings hold the loopback councils, opened in the browser."""
    write_settings(manyminds_home, fake)
    with running_server(tmp_path / "serve.log") as base:
        open_page(browser, base)
        yield browser


def test_a_live_run_streams_each_member_and_shows_the_verdict(page):
    assert [o.get_attribute("value") for o in page.find_elements(By.CSS_SELECTOR, "#council option")] == \
        ["broken", "fake", "local", "local-plus", "tower"]
    assert Select(page.find_element(By.ID, "council")).first_selected_option.get_attribute("value") == "fake"

    ask(page, "Who wrote Hamlet?")
    wait_for_verdict(page)
    cols = columns(page)
    assert list(cols) == ["alpha", "beta", "gamma"]
    assert cols["alpha"]["status"] == "ok" and cols["alpha"]["text"] == "William Shakespeare wrote Hamlet."
    assert cols["alpha"]["deltas"] >= 4  # streamed word by word, not pasted at the end
    assert "4 tokens" in cols["alpha"]["meta"] and " s" in cols["alpha"]["meta"]
    # A failed member: its status and cause in its column.
    assert cols["gamma"]["status"] == "failed" and "Incorrect API key" in cols["gamma"]["error"]
    # Model text is text: the markup shows literally and nothing ran.
    assert cols["beta"]["text"] == XSS_MEMBER
    assert page.execute_script("return window.__xss") is None
    assert page.find_elements(By.CSS_SELECTOR, "#members img, #members script") == []
    # The verdict: confidence as bar + number + explanation; answers × members.
    assert "Shakespeare" in page.find_element(By.ID, "answer").text
    assert page.find_element(By.ID, "confidence-value").text == "67%"
    assert page.find_element(By.ID, "confidence-bar").get_attribute("aria-valuenow") == "67"
    assert "alpha" in page.find_element(By.ID, "confidence-explanation").text
    assert stances(page, "#agreement tbody tr:first-child") == ["supports", "supports", "silent"]
    assert "gamma" in page.find_element(By.ID, "warnings").text
    stages = [li.get_attribute("data-stage") for li in page.find_elements(By.CSS_SELECTOR, "#stages li")]
    assert stages == ["fan_out", "compare", "synthesize"]
    # The run is in the history.
    history = wait(page, lambda d: [li.text for li in d.find_elements(By.CSS_SELECTOR, "#history-list li")
                                    if "Who wrote Hamlet?" in li.text], 10, "the run in the history")
    assert "complete" in history[0] and "67%" in history[0]
    assert no_horizontal_scroll(page)
    assert console_errors(page) == []


def test_every_member_failing_is_shown_with_each_cause(page):
    ask(page, "Who wrote Hamlet?", council="broken")
    wait(page, lambda d: visible(d, "#error"), 30, "the error")
    error = page.find_element(By.ID, "error").text
    assert "QuorumNotMet" in error and "Only 0 member(s) answered" in error
    assert "gamma" in error and "Incorrect API key" in error and "down" in error and "upstream exploded" in error
    assert not visible(page, "#verdict-section")
    assert {c["status"] for c in columns(page).values()} == {"failed"}
    wait(page, lambda d: "failed" in d.find_element(By.ID, "history-list").text, 10, "the failed run in the history")


def test_a_stored_run_shows_its_claims_matrix_as_text(page, manyminds_home, tmp_path):
    stored_id = store_run_with_claims(manyminds_home)
    # Found by searching the history, opened with the keyboard.
    page.find_element(By.ID, "history-search").send_keys("Eiffel")
    wait(page, lambda d: [b.get_attribute("data-run-id") for b in d.find_elements(By.CSS_SELECTOR, ".history-item")]
         == [stored_id], 10, "the search")
    page.find_element(By.CSS_SELECTOR, f'.history-item[data-run-id="{stored_id}"]').send_keys(Keys.ENTER)
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#agreement table.claims-matrix"), 10, "the claims matrix")

    assert stances(page, 'tr[data-claim="c1"]') == ["supports", "supports", "contradicts"]
    assert stances(page, 'tr[data-claim="c2"]') == ["supports", "silent", "silent"]
    c1 = page.find_element(By.CSS_SELECTOR, 'tr[data-claim="c1"]').text
    assert "contested" in c1 and "supported" in c1
    c2 = page.find_element(By.CSS_SELECTOR, 'tr[data-claim="c2"]').text
    assert "It is made of <b>wrought iron</b>." in c2 and "unique" in c2 and "unchecked" in c2
    assert [e.text for e in page.find_elements(By.CSS_SELECTOR, ".legend li")] == \
        ["✓ supports", "✗ contradicts", "– silent (did not say, or failed)"]
    assert page.find_element(By.ID, "answer").text == XSS_ANSWER
    assert page.execute_script("return window.__xss") is None
    assert page.find_elements(By.CSS_SELECTOR, "#verdict-section img, #verdict-section script, #verdict-section b") == []
    assert "docs/tower.pdf, page 3" in page.find_element(By.ID, "citations").text
    assert "Lyon" in page.find_element(By.ID, "dissent").text
    assert columns(page)["gamma"]["text"] == "It stands in Lyon."
    assert not visible(page, "#error")
    assert page.current_url.endswith(f"#run={stored_id}")

    # A follow-up question is one click away, and asks it.
    Select(page.find_element(By.ID, "council")).select_by_value("tower")
    page.find_element(By.CSS_SELECTOR, "#follow-ups-list button").click()
    wait(page, lambda d: d.find_element(By.ID, "run-question").text == "How tall is the Eiffel Tower?", 10, "the follow-up")
    wait_for_verdict(page)
    assert page.find_element(By.ID, "answer").text.startswith("330")  # the vote's short answer
    assert "330 metres" in page.find_element(By.ID, "explanation").text  # the prose that explains it
    assert page.find_element(By.ID, "question").get_attribute("value") == "How tall is the Eiffel Tower?"

    # The stored run again, on a narrow screen: one column, nothing wider than the window.
    set_viewport(page, 400, 900)
    page.find_element(By.CSS_SELECTOR, f'.history-item[data-run-id="{stored_id}"]').click()
    wait(page, lambda d: d.find_elements(By.CSS_SELECTOR, "#agreement table.claims-matrix"), 10, "the claims matrix")
    assert no_horizontal_scroll(page)
    full_page_screenshot(page, tmp_path / "web-narrow.png")
    assert console_errors(page) == []


def test_a_deep_run_shows_its_review_and_revision_stages(page):
    page.find_element(By.ID, "deep").click()
    ask(page, "Who wrote Hamlet?")
    wait_for_verdict(page)
    stages = [li.get_attribute("data-stage") for li in page.find_elements(By.CSS_SELECTOR, "#stages li")]
    assert stages[0] == "fan_out" and "review_1" in stages and "revise_1" in stages and stages[-1] == "synthesize"
    assert {li.get_attribute("data-status") for li in page.find_elements(By.CSS_SELECTOR, "#stages li")} == {"done"}
    # Each member that answered shows its later stages under its answer.
    alpha = page.find_element(By.CSS_SELECTOR, '.member[data-member="alpha"]')
    assert [d.get_attribute("data-stage") for d in alpha.find_elements(By.CSS_SELECTOR, "details.member-stage")][:2] == \
        ["review_1", "revise_1"]
    assert "strategy deep" in page.find_element(By.ID, "verdict-footer").text


def test_page_with_a_token(manyminds_home, fake, browser, tmp_path):
    write_settings(manyminds_home, fake)
    with running_server(tmp_path / "serve.log", "--token", "s3cret-token") as base:
        # The token rides in the fragment (never sent, never logged); the page keeps it for the tab.
        browser.get(base + "/#token=s3cret-token")
        open_page_loaded = lambda d: d.execute_script("return document.querySelector('#council option').value") != ""
        wait(browser, open_page_loaded, 30, "the councils with the token")
        assert "s3cret" not in browser.current_url
        ask(browser, "Who wrote Hamlet?")
        wait_for_verdict(browser)  # the event stream carried the token as ?token=
        assert columns(browser)["alpha"]["status"] == "ok"

        # Without a (valid) token the page asks for one, and works once it is given.
        browser.execute_script("sessionStorage.clear()")
        browser.get("about:blank")
        browser.get(base + "/")
        wait(browser, lambda d: d.find_element(By.ID, "token-box").get_attribute("open") is not None, 10, "the token prompt")
        assert "needs an access token" in browser.find_element(By.ID, "status").text
        browser.find_element(By.ID, "token").send_keys("s3cret-token", Keys.ENTER)
        wait(browser, open_page_loaded, 30, "the councils after entering the token")
        assert "Who wrote Hamlet?" in browser.find_element(By.ID, "history-list").text


XSS_MEMORY = 'My favourite play is Hamlet <img src=x onerror="window.__xss=5"> and I want its author.'


def test_the_memory_panel_adds_shows_uses_and_forgets(manyminds_home, fake, browser, tmp_path):
    import sqlite3

    write_settings(manyminds_home, fake)
    with open(manyminds_home / "settings.toml", "a") as f:
        f.write('\n[memory]\nshare_with = ["fake"]\n')
    with running_server(tmp_path / "serve.log") as base:
        open_page(browser, base)
        assert browser.find_element(By.ID, "memory-empty").is_displayed()
        # Bad input: an empty note is refused with the server's reason.
        browser.find_element(By.ID, "memory-add").click()
        wait(browser, lambda d: visible(d, "#error"), 10, "the refusal")
        assert "The memory is empty" in browser.find_element(By.ID, "error").text

        browser.find_element(By.ID, "memory-text").send_keys(XSS_MEMORY)
        browser.find_element(By.ID, "memory-add").click()
        items = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#memory-list li"), 20, "the new memory")
        assert items[0].find_element(By.CSS_SELECTOR, ".memory-text").text == XSS_MEMORY  # shown as text
        assert browser.find_elements(By.CSS_SELECTOR, "#memory-list img") == []

        ask(browser, "Who wrote Hamlet?")
        wait_for_verdict(browser)
        used = browser.find_element(By.ID, "memory-used")
        assert used.is_displayed() and XSS_MEMORY in used.text
        assert "given to alpha, beta, gamma" in browser.find_element(By.ID, "memory-used-caption").text
        assert browser.find_elements(By.CSS_SELECTOR, "#memory-used img") == []
        assert any("My favourite play is Hamlet" in str(r.body) for r in fake.requests)

        # Unticked, the next question goes without it.
        fake.reset()
        browser.find_element(By.ID, "use-memory").click()
        ask(browser, "Who wrote Hamlet?")
        wait(browser, lambda d: not visible(d, "#memory-used") and visible(d, "#verdict-section"), 30, "a verdict without memory")
        assert fake.requests and not any("My favourite play" in str(r.body) for r in fake.requests)

        memory_id = browser.find_element(By.CSS_SELECTOR, "#memory-list li").get_attribute("data-memory-id")
        browser.find_element(By.CSS_SELECTOR, "#memory-list li button.forget").click()
        wait(browser, lambda d: visible(d, "#memory-empty"), 10, "the empty memory list")
        assert browser.execute_script("return window.__xss") is None
        # The one failed request is the refused empty note (422); no script error.
        assert all("/api/memory" in e and "422" in e for e in console_errors(browser))
    con = sqlite3.connect(manyminds_home / "manyminds.db")
    try:
        assert con.execute("select count(*) from memories where id = ?", [memory_id]).fetchone()[0] == 0
        assert con.execute("select count(*) from memory_vectors").fetchone()[0] == 0
    finally:
        con.close()


@pytest.mark.local_model
def test_ask_the_local_council_end_to_end(manyminds_home, browser, tmp_path):
    with running_server(tmp_path / "serve.log") as base:
        open_page(browser, base)
        assert Select(browser.find_element(By.ID, "council")).first_selected_option.get_attribute("value") == "local"
        ask(browser, "Who wrote Hamlet?")  # the local council disagrees on this one: dissent to show
        # The columns fill while the members stream, before the verdict.
        wait(browser, lambda d: any(c["deltas"] > 0 and c["text"] for c in columns(d).values()), 300, "streamed text")
        wait_for_verdict(browser, timeout=600)

        cols = columns(browser)
        assert set(cols) == {"smollm2", "gemma3", "smollm2-terse"}
        for name, col in cols.items():
            assert col["status"] == "ok", (name, col)
            assert col["text"].strip() and col["deltas"] > 0, (name, col)
            assert "token" in col["meta"]
        confidence = browser.find_element(By.ID, "confidence-value").text
        assert confidence.endswith("%") and 0 <= int(confidence[:-1]) <= 100
        assert browser.find_element(By.ID, "confidence-explanation").text
        assert browser.find_element(By.ID, "answer").text.strip()
        cells = browser.find_elements(By.CSS_SELECTOR, "#agreement td[data-stance]")
        assert len(cells) >= 3 and {c.get_attribute("data-stance") for c in cells} <= {"supports", "contradicts", "silent"}
        assert sum(c.get_attribute("data-stance") == "supports" for c in cells) == 3  # each member backs one answer
        stages = [li.get_attribute("data-stage") for li in browser.find_elements(By.CSS_SELECTOR, "#stages li")]
        assert stages[:3] == ["fan_out", "compare", "synthesize"]
        wait(browser, lambda d: [li for li in d.find_elements(By.CSS_SELECTOR, "#history-list li")
                                 if "Who wrote Hamlet?" in li.text], 10, "the run in the history")
        assert no_horizontal_scroll(browser)

        browser.execute_script("window.scrollTo(0, 0)")
        assert browser.execute_script("return [window.innerWidth, window.innerHeight]") == [1280, 800]
        viewport = tmp_path / "web-1280x800.png"
        browser.save_screenshot(str(viewport))
        shot = tmp_path / "web.png"
        full_page_screenshot(browser, shot)
        assert shot.stat().st_size > 10_000 and viewport.stat().st_size > 10_000
        print(f"screenshots: {shot} {viewport}")
        if os.environ.get("MANYMINDS_UPDATE_SCREENSHOT"):
            shutil.copyfile(shot, REPO / "docs" / "web.png")


def test_roles_in_the_council_view_and_specialists_in_the_verdict(manyminds_home, browser, tmp_path):
    judge = '{"errors": [], "ranking": ["A", "B"]}'
    with FakeOpenAIServer({"general": Behaviour(text="391"), "calc": Behaviour(text="Answer: 391"),
                           "nurse": Behaviour(text="Sleep well."), "judge": Behaviour(text=judge)}) as srv:
        lines = ['default_council = "team"', "[providers.fake]", f'base_url = "{srv.base_url}"', "[councils.team]",
                 "quorum = 1", "timeout = 20", "retries = 0", 'short_answer = "heuristic"', 'chair = "general"']
        for name, role in (("general", None), ("calc", "maths"), ("nurse", "health-with-caution"), ("judge", "critic")):
            lines += ["[[councils.team.members]]", f'name = "{name}"', f'model = "fake/{name}"'] + ([f'role = "{role}"'] if role else [])
        (manyminds_home / "settings.toml").write_text("\n".join(lines) + "\n")
        with running_server(tmp_path / "serve.log") as base:
            open_page(browser, base)
            # The council picker shows the roles of the selected council's members.
            option = browser.find_element(By.CSS_SELECTOR, '#council option[value="team"]').text
            assert "calc [maths]" in option and "judge [critic]" in option and "general [" not in option
            roles = {li.get_attribute("data-member"): li.text for li in browser.find_elements(By.CSS_SELECTOR, "#council-roles li")}
            assert set(roles) == {"calc", "nurse", "judge"} and "maths (answer)" in roles["calc"] and "critic (critic)" in roles["judge"]

            ask(browser, "What is 17 * 23?")
            wait_for_verdict(browser)
            items = {li.get_attribute("data-member"): li for li in browser.find_elements(By.CSS_SELECTOR, "#specialists-list li")}
            assert items["calc"].get_attribute("data-status") == "spoke"
            assert items["nurse"].get_attribute("data-status") == "skipped" and "health-with-caution" in items["nurse"].text
            assert items["judge"].get_attribute("data-status") == "reviewed" and "scores:" in items["judge"].text
            # The skipped specialist's column says it was not asked, and why.
            nurse = browser.find_element(By.CSS_SELECTOR, '#members .member[data-member="nurse"]')
            assert "skipped" in nurse.find_element(By.CSS_SELECTOR, ".badge").text
            assert "none of role 'health-with-caution'" in nurse.find_element(By.CSS_SELECTOR, ".member-note").text
            assert console_errors(browser) == []
