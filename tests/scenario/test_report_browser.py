"""The demo's HTML report, opened in a real browser (Debian's Chromium, driven by Playwright)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from rich.console import Console

from accord.scenario.demo import DemoResult, run_demo
from accord.scenario.report import sankey_links

pytestmark = [pytest.mark.integration, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches out to the network.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path]:
    folder = tmp_path_factory.mktemp("report")
    path = folder / "accord-report.html"
    console = Console(file=io.StringIO())
    result = run_demo(console, people=400, seed=3, data_dir=folder / "data", report=path)
    return result, path


def test_the_report_draws_the_flows_and_lists_every_one(
    browser: Browser, report: tuple[DemoResult, Path], tmp_path: Path
) -> None:
    result, path = report
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_selector("#flows-sankey .sankey-node", timeout=30_000)
    links = sankey_links(result.flows)
    labels = {a for a, _, _, _ in links} | {b for _, b, _, _ in links}
    assert page.locator("#flows-sankey .sankey-node").count() == len(labels)
    shown = set(
        page.locator("#flows-sankey .sankey-node .node-label").evaluate_all(
            "labels => labels.map(label => label.textContent)"
        )
    )
    assert shown == labels
    assert page.locator("#summary-table tbody tr").count() == len(result.flows)
    abuses = [f for f in result.flows if f.abuse]
    assert page.locator("#refusals-table tbody tr").count() == len(abuses)
    assert page.locator("#checkpoint").inner_text().strip() == result.checkpoint.strip()
    # The summary links to each flow's own section.
    page.locator("#summary-table a", has_text="Friend picker").click()
    assert page.url.endswith("#friend-picker")
    assert page.locator("section#friend-picker").is_visible()
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert errors == []
    page.close()
