"""The dashboard in a real browser: Debian's headless chromium driven by Selenium, against a
worker serving a demo fleet. Screenshots go to tests/artifacts/ (docs/screenshots/ keeps the
overview and a job page). Without chromium these tests skip, saying how to install it."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.dashboard.conftest import ARTIFACTS, TOKEN, jobs_of, submit, wait_status
from tests.e2e.service.conftest import Worker

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1280,1400")
WAIT_S = 120.0  # failure bound only: every wait ends on the awaited page state

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in statek[test]")
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(f"BROWSER TESTS SKIPPED: {CHROMIUM} or {CHROMEDRIVER} missing "
                "(apt-get install -y chromium chromium-driver)", allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    profile = tempfile.mkdtemp(prefix="statek-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    service = webdriver.ChromeService(executable_path=CHROMEDRIVER)
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(browser: Any, check: Any, what: str) -> Any:
    # a live refresh may replace the element between finding and reading it: look again
    waiting = WebDriverWait(browser, WAIT_S, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(lambda d: check(d), message=what)


def text_of(browser: Any, css: str) -> str:
    """The element's text; found again when a live refresh replaced it meanwhile."""
    for _ in range(9):
        try:
            return str(browser.find_element(By.CSS_SELECTOR, css).text)
        except StaleElementReferenceException:
            continue
    return str(browser.find_element(By.CSS_SELECTOR, css).text)


def live(browser: Any) -> None:
    wait_for(browser, lambda d: "live" in text_of(d, "#live") and "●" in text_of(d, "#live"),
             "the page's event stream to open")


def shot(browser: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    assert browser.save_screenshot(str(path)), path
    assert path.stat().st_size > 1000
    return path


def chart_points(browser: Any) -> int:
    """Points of the steps/s chart (a sample every 2 s; one point per pair of samples)."""
    line = browser.find_element(By.CSS_SELECTOR, "svg.chart polyline")
    return len((line.get_attribute("points") or "").split())


def test_overview_page(browser: Any, worker: Worker, http: httpx.Client) -> None:
    browser.get(worker.url + "/dashboard")
    live(browser)
    counts = http.get("/v1/counts").json()["by_status"]  # nothing runs: the same numbers
    for status, count in counts.items():
        assert text_of(browser, f'[data-status-count="{status}"]') == str(count), status
    table = text_of(browser, "#by-agent")
    assert "demo-helper" in table and "demo-analyst" in table
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart polyline")) == 2
    before = counts["DONE"]
    batch = http.post("/v1/jobs/batch", json={"agent": "dash-square",
                                             "vars_batch": [{"n": k} for k in range(300)]})
    assert batch.status_code == 201, batch.text
    wait_for(browser, lambda d: text_of(d, '[data-status-count="DONE"]') == str(before + 300),
             "the DONE count to follow the batch without a reload")
    assert "→" in text_of(browser, "#events")  # live events listed
    wait_for(browser, lambda d: chart_points(d) >= 3, "the charts' refresh to show samples")
    steps = http.get("/v1/counts").json()["by_status"]["DONE"]
    assert steps == before + 300
    shot(browser, "overview.png")


def test_job_list_filters_in_the_form(browser: Any, worker: Worker, http: httpx.Client) -> None:
    browser.get(worker.url + "/dashboard/jobs")
    live(browser)
    browser.find_element(By.CSS_SELECTOR, 'input[name="status"][value="DONE"]').click()
    select = browser.find_element(By.CSS_SELECTOR, 'select[name="agent"]')
    select.find_element(By.CSS_SELECTOR, 'option[value="demo-helper"]').click()
    browser.find_element(By.CSS_SELECTOR, ".filters button[type=submit]").click()
    wait_for(browser, lambda d: "agent=demo-helper" in d.current_url, "the filtered list")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-job]")
    helpers = {j["uuid"] for j in jobs_of(http, "demo-helper")}
    assert {r.get_attribute("data-job") for r in rows} == helpers
    assert {r.find_element(By.CSS_SELECTOR, "[data-status]").text for r in rows} == {"DONE"}
    shot(browser, "jobs.png")


def test_job_page_shows_the_conversation(browser: Any, worker: Worker,
                                         http: httpx.Client) -> None:
    (analyst,) = jobs_of(http, "demo-analyst")
    browser.get(f"{worker.url}/dashboard/jobs/{analyst['uuid']}")
    live(browser)
    codes = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#chat pre.code")]
    assert codes[0].startswith("total = sum(range(10))")
    assert "exit({'total': total, 'turns': 2})" in codes[1]
    assert text_of(browser, "#job-status") == "DONE"
    assert "total is 45" in text_of(browser, "#console")
    assert "model turn 2" in text_of(browser, "#timeline")
    shot(browser, "job.png")
    (dispatcher,) = jobs_of(http, "demo-dispatcher")
    browser.get(f"{worker.url}/dashboard/jobs/{dispatcher['uuid']}")
    children = browser.find_elements(By.CSS_SELECTOR, "#children li a")
    assert len(children) == len(jobs_of(http, "demo-helper"))
    shot(browser, "job-tree.png")


def test_a_status_changes_live_and_hostile_text_stays_text(
        browser: Any, worker: Worker, http: httpx.Client) -> None:
    waiter = submit(http, "dash-waiter")
    wait_status(http, waiter, "SUSPENDED")
    browser.get(f"{worker.url}/dashboard/jobs/{waiter}")
    live(browser)
    assert text_of(browser, "#job-status") == "SUSPENDED"
    assert "a message pushed to this job" in text_of(browser, "#waits")
    console = text_of(browser, "#console")
    assert "<script>window.__xss = 1</script>" in console  # shown as text
    assert browser.execute_script("return window.__xss === undefined")
    assert not browser.find_elements(By.CSS_SELECTOR, "#console script, #console img")
    browser.execute_script("window.__sameDocument = 'kept'")  # gone if the page reloads
    answer = http.post(f"/v1/jobs/{waiter}/messages", json={"message": "<b>go</b>"})
    assert answer.status_code == 202
    wait_for(browser, lambda d: text_of(d, "#job-status") == "DONE",
             "the status badge to turn DONE from the event stream")
    assert browser.execute_script("return window.__sameDocument") == "kept"
    wait_for(browser, lambda d: "<b>go</b>" in text_of(d, "#job-result"),
             "the refreshed result section")
    assert "now DONE" in text_of(browser, "#timeline")
    assert browser.execute_script("return window.__xss === undefined")
    shot(browser, "job-live.png")


def test_signed_in_the_job_page_pushes_a_message(browser: Any, token_worker: Worker) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=token_worker.url, headers=headers, timeout=60) as http:
        waiter = submit(http, "dash-waiter")
        wait_status(http, waiter, "SUSPENDED")
    browser.get(f"{token_worker.url}/dashboard/jobs/{waiter}")
    wait_for(browser, lambda d: "/dashboard/login" in d.current_url, "the sign-in page")
    assert not browser.find_elements(By.ID, "push-form")
    browser.find_element(By.CSS_SELECTOR, 'input[name="token"]').send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(browser, lambda d: d.current_url.endswith(f"/dashboard/jobs/{waiter}"),
             "the job page again after signing in")
    live(browser)
    assert text_of(browser, "#job-status") == "SUSPENDED"
    browser.find_element(By.ID, "push-text").send_keys("pushed from the browser")
    browser.find_element(By.CSS_SELECTOR, "#push-form button").click()
    wait_for(browser, lambda d: text_of(d, "#job-status") == "DONE",
             "the pushed message to finish the job")
    assert "done:" in text_of(browser, "#action-result")
    wait_for(browser, lambda d: "pushed from the browser" in text_of(d, "#job-result"),
             "the exit status the message gave")
    shot(browser, "job-signed-in.png")
