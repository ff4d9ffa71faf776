"""The web page with an effort tier, in headless Chromium against `manyminds serve`: the router's
choice shown above the confidence, and the member that early consensus cut shown as cut."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("selenium")
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select
from test_web import CHROMEDRIVER, CHROMIUM, browser, columns, open_page, running_server, visible, wait, wait_for_verdict  # noqa: F401

from manyminds.testing import Behaviour, FakeOpenAIServer

pytestmark = pytest.mark.skipif(
    not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()), reason="needs chromium and chromedriver"
)


def test_the_page_shows_the_route_and_the_cut_member(manyminds_home, browser, tmp_path):  # noqa: F811
    with FakeOpenAIServer({"alpha": Behaviour(text="William Shakespeare wrote Hamlet."), "beta": Behaviour(text="Shakespeare"),
                           "slow": Behaviour(text="Christopher Marlowe", latency=60)}) as fake:
        lines = ['default_council = "fake"', "", "[providers.fake]", f'base_url = "{fake.base_url}"', "",
                 "[councils.fake]", "quorum = 2", "timeout = 120", "retries = 0", 'short_answer = "heuristic"']
        for seat in ("alpha", "beta", "slow"):
            lines += ["[[councils.fake.members]]", f'name = "{seat}"', f'model = "fake/{seat}"']
        (manyminds_home / "settings.toml").write_text("\n".join(lines) + "\n")
        with running_server(tmp_path / "serve.log") as base:
            open_page(browser, base)
            Select(browser.find_element(By.ID, "effort")).select_by_value("auto")
            box = browser.find_element(By.ID, "question")
            box.send_keys("Who wrote Hamlet?")
            browser.find_element(By.ID, "ask-button").click()
            wait_for_verdict(browser, timeout=60)
            wait(browser, lambda d: visible(d, "#route"), 10, "the route")
            route = browser.find_element(By.ID, "route").text
            assert route.startswith("Route: quick — a short factual question") and "they agreed" in route
            assert "Early consensus: cut slow" in route
            assert columns(browser)["slow"]["status"] == "cut"
            assert "Shakespeare" in browser.find_element(By.ID, "answer").text
