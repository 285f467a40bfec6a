"""The run viewer (``actorflow ui``) in a real headless Chromium, driven by Playwright."""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from actorflow import flow, journal, task
from actorflow._journal._ui import RunViewer
from actorflow.journal import Journal

CHROMIUM = "/usr/bin/chromium"  # Debian's package (.ci/run installs it); never a download


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def _demo_flow(gate: threading.Event) -> object:
    attempts: list[int] = []

    @task
    def load(x: int) -> int:
        return x

    @task(retries=2)
    def flaky(x: int) -> int:
        attempts.append(x)
        if len(attempts) < 3:
            raise ConnectionError(f"attempt {len(attempts)} lost the connection")
        return x

    @task
    def broken(x: int) -> int:
        raise ValueError(f"bad input {x}")

    @task
    def report(x: int) -> int:
        return x

    @task
    def slow() -> str:
        gate.wait(30)
        return "done"

    @flow(flow_run_name="nightly-etl")
    def etl() -> None:
        loads = load.map(range(3))
        flaky.submit(7).wait()
        report.submit(broken.submit(1)).wait()
        slow.submit().wait()
        loads.wait()

    return etl


def _bars(page: Page) -> list[dict[str, str]]:
    return page.locator(".bar").evaluate_all(
        "els => els.map(e => ({state: e.dataset.state, attempts: e.dataset.attempts,"
        " unfinished: e.classList.contains('unfinished') ? 'yes' : 'no',"
        " label: e.closest('.lane').querySelector('.label').textContent}))"
    )


def test_the_viewer_shows_a_flow_run_live_and_when_done(browser: Browser, tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    writer = journal.enable(path, interval=0.05, progress=False)
    gate = threading.Event()
    etl = _demo_flow(gate)
    running = threading.Thread(target=etl)  # type: ignore[arg-type]  # a flow is callable
    reader = Journal.open(path)
    viewer = RunViewer(reader, port=0).start()
    page = browser.new_page(viewport={"width": 1400, "height": 820})
    try:
        running.start()
        page.goto(viewer.url)
        # While the flow runs: the newest flow run is shown, its slow task unfinished.
        page.wait_for_selector(".lane:has(.label:text-matches('^slow')) .bar.unfinished")
        assert page.locator("tr.flow-run").first.get_attribute("data-state") == "Running"
        gate.set()
        running.join()
        # The page refreshes by itself until the flow run is over.
        page.wait_for_selector("#flow-title .pill:text('Completed')")
        page.wait_for_selector(".lane:has(.label:text-matches('^slow')) .bar[data-state=Completed]")
        bars = _bars(page)
        states = sorted(b["state"] for b in bars)
        assert states == ["Completed"] * 5 + ["Failed", "NotReady"]
        flaky_bar = next(b for b in bars if b["label"].startswith("flaky"))
        assert flaky_bar["attempts"] == "3" and "↻2" in flaky_bar["label"]
        assert all(b["unfinished"] == "no" for b in bars)
        segments = page.locator(".lane:has(.label:text-matches('^flaky')) .segment")
        assert segments.evaluate_all("els => els.map(e => e.dataset.state)") == [
            "Running",
            "Retrying",
            "Retrying",
            "Completed",
        ]  # each attempt a segment of its own
        # The details of a selected run: its history and its traceback.
        page.click(".lane:has(.label:text-matches('^broken'))")
        page.wait_for_selector("#run-title:text('broken')")
        assert "ValueError: bad input 1" in page.locator("pre.traceback").inner_text()
        page.screenshot(path=str(tmp_path / "viewer.png"))
        assert (tmp_path / "viewer.png").stat().st_size > 10_000
    finally:
        gate.set()
        page.close()
        viewer.close()
        reader.close()
        journal.disable()
        running.join(10)
    assert writer.path == str(path)


def test_the_api_names_what_is_missing(tmp_path: Path) -> None:
    reader = Journal(tmp_path / "empty.db")
    viewer = RunViewer(reader, port=0).start()
    try:
        with urllib.request.urlopen(viewer.url + "api/flow-runs") as response:
            assert orjson.loads(response.read()) == {"flow_runs": []}
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(viewer.url + "api/runs/" + "0" * 32)
        assert info.value.code == 404
        assert "no run with id" in orjson.loads(info.value.read())["error"]
        with urllib.request.urlopen(viewer.url) as response:
            assert b"actorflow runs" in response.read()
    finally:
        viewer.close()
        reader.close()
    assert viewer.url.startswith("http://127.0.0.1:")


def test_actorflow_ui_serves_the_journal_it_is_given(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    journal_file = tmp_path / "journal.db"
    Journal(journal_file).close()
    server = subprocess.Popen(
        [sys.executable, "-m", "actorflow", "ui", "--port", "0", "--journal", str(journal_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("actorflow run viewer on http://127.0.0.1:"), line
        url = line.split()[4]
        with urllib.request.urlopen(url + "api/flow-runs") as response:
            assert orjson.loads(response.read()) == {"flow_runs": []}
    finally:
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=30)
    assert server.returncode == 0
    missing = subprocess.run(
        [sys.executable, "-m", "actorflow", "ui", "--journal", str(tmp_path / "none.db")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1 and "no run journal at" in missing.stderr
