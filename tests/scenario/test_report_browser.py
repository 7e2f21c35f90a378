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
    # Enough people for the ad season to run (ADS_BY_DEFAULT_FROM).
    result = run_demo(console, people=1_000, seed=3, data_dir=folder / "data", report=path)
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


def test_the_money_beside_the_data_draws_its_chart_and_lists_reelix_first(
    browser: Browser, report: tuple[DemoResult, Path], tmp_path: Path
) -> None:
    result, path = report
    assert result.ads is not None
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.as_uri())
    page.wait_for_selector("#ads-chart .main-svg", timeout=30_000)
    # Two bars a year (the filings' budget scaled, what Reelix was charged) and the access line.
    years = result.ads.season.windows
    assert page.locator("#ads-chart .barlayer .point").count() == 2 * len(years)
    assert page.locator("#ads-chart .scatterlayer .trace").count() == 1
    assert page.locator("#ads-chart .scatterlayer .point").count() == len(years)
    texts = "elements => elements.map(element => element.textContent)"
    ticks = page.locator("#ads-chart .xtick text").evaluate_all(texts)
    assert ticks == [str(begins.year) for begins, _ in years]
    legend = " ".join(page.locator("#ads-chart .legendtext").evaluate_all(texts))
    assert "$40M, $150M, $200M" in legend
    # The table: Reelix first, and the largest advertiser every year.
    first = page.locator("#ads-table tbody tr").first
    assert first.get_attribute("data-advertiser") == "reelix"
    assert first.locator("td.advertiser").inner_text() == "Reelix"
    spend: dict[str, dict[str, float]] = {}
    for row in page.locator("#ads-table tbody tr").all():
        cells = row.locator("td.n").all_inner_texts()
        advertiser = row.get_attribute("data-advertiser") or ""
        period = row.get_attribute("data-period") or ""
        spend.setdefault(period, {})[advertiser] = float(cells[0].lstrip("$").replace(",", ""))
    for period, by in spend.items():
        assert max(by, key=lambda a: by[a]) == "reelix", period
    # Non-parties have no access; Reelix has its agreements' in the year of the flows.
    assert page.locator("#ads-table td.none").count() == len(
        {r.advertiser for r in result.ads.money.rows if r.access is None}
    )
    assert page.locator("#ads-entries").inner_text() == f"{result.ads.money.spend_entries:,}"
    section = page.locator("section#money")
    assert section.is_visible()
    shot = tmp_path / "money.png"
    section.screenshot(path=str(shot))
    assert shot.stat().st_size > 10_000
    assert errors == []
    page.close()
