"""Make docs/journal-ui.png: run a small flow into a fresh journal, open the run viewer in
headless Chromium (Debian's, at /usr/bin/chromium) and take a screenshot.

    .venv/bin/python docs/journal_screenshot.py
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

from actorflow import flow, get_run_logger, journal, task
from actorflow._journal._ui import RunViewer

OUT = Path(__file__).resolve().parent / "journal-ui.png"


@task
def extract(day: int) -> list[int]:
    time.sleep(random.uniform(0.05, 0.25))
    return list(range(day))


@task(retries=2, retry_delay_seconds=0.15)
def fetch_prices(day: int) -> int:
    time.sleep(0.08)
    if random.random() < 0.6:
        raise ConnectionError("price feed timed out")
    return day


@task
def transform(rows: list[int]) -> int:
    time.sleep(random.uniform(0.1, 0.3))
    if len(rows) == 4:
        raise ValueError("row 3 has no customer id")
    return sum(rows)


@task
def load(total: int) -> int:
    time.sleep(0.05)
    get_run_logger().info("loaded %s rows", total)
    return total


@flow(flow_run_name="nightly-etl")
def nightly_etl(days: int = 6) -> None:
    prices = fetch_prices.map(range(2))
    totals = [load.submit(transform.submit(extract.submit(d))) for d in range(1, days + 1)]
    for future in totals:
        future.wait()
    prices.wait()


def main() -> None:
    random.seed(7)
    path = Path(tempfile.mkdtemp()) / "journal.db"
    journal.enable(path, progress=False)
    nightly_etl()
    journal.disable()
    viewer = RunViewer(journal.Journal.open(path), port=0).start()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = browser.new_page(viewport={"width": 1320, "height": 760})
        page.goto(viewer.url)
        page.wait_for_selector(".bar")
        page.click(".lane:has(.label:text-matches('^transform')) >> nth=3")
        page.wait_for_selector("pre.traceback")
        page.screenshot(path=str(OUT), full_page=True)
        browser.close()
    viewer.close()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
