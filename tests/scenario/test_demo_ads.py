"""``accord demo``'s ad season and the money beside the data, end to end on 1,000 people.

The season is checked against the store's own records (every charge, day, invoice and ledger
entry), and the data access beside the money against the demo's own tally of its flows.
"""

from __future__ import annotations

import io
import json
import re
import sqlite3
from collections import defaultdict
from contextlib import closing
from datetime import date, timedelta
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from accord.ads.access import spend_beside_access
from accord.ads.audiences import member_digest
from accord.ads.cards import absent_from
from accord.ads.model import MICROS
from accord.ads.pacing import day_cap
from accord.ads.spend import SpendBook
from accord.ads.store import AdsStore
from accord.cli import app
from accord.errors import InvalidInput
from accord.ledger.audit import verify_ledger
from accord.scenario.ads import DEMO_DAYS, DEMO_YEARS, REELIX_YEARLY, SCALE_AUDIENCE
from accord.scenario.demo import AD_SEASON_ENDS, DEMO_AT, DemoResult, run_demo
from accord.scenario.partner_ads import AGREEMENT as PARTNER_ADS
from accord.scenario.partner_ads import WITHDRAWALS
from accord.service import Accord
from accord.store.consents import ConsentRepository
from accord.taxonomy import MEDIA_CONSUMPTION
from accord.taxonomy import THIRD_PARTY_TARGETED_ADS as TARGETED_ADS

pytestmark = pytest.mark.integration

PEOPLE, SEED = 1_000, 5
runner = CliRunner()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[DemoResult, Path, str]:
    folder = tmp_path_factory.mktemp("demo-ads")
    console = Console(file=io.StringIO(), width=160, record=True)
    result = run_demo(
        console,
        people=PEOPLE,
        seed=SEED,
        data_dir=folder / "data",
        report=folder / "accord-report.html",
        replay=False,
    )
    return result, folder, console.export_text()


def store_rows(folder: Path, query: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(folder / "data" / "accord.db")) as db:
        return db.execute(query).fetchall()


def partner_ads_access(folder: Path) -> dict[str, int]:
    """What the ledger holds under the partner-ads agreement (the audiences' and the lift's
    matching, after the flows): decisions allowed and refused, and the people its releases
    involving Reelix let through."""
    with Accord.open(data_dir=folder / "data") as accord:
        entries = [leaf.entry() for leaf in accord.ledger.recent(400)]
    found = {"allowed": 0, "refused": 0, "people": 0}
    for e in entries:
        if e.get("agreement") != PARTNER_ADS:
            continue
        if e.get("kind") == "decision":
            found["allowed" if e.get("allowed") else "refused"] += 1
        elif e.get("kind") == "release" and "reelix" in (e.get("provider"), e.get("recipient")):
            found["people"] += int(e.get("people") or 0)
    return found


def run(*args: str, code: int = 0) -> str:
    outcome = runner.invoke(app, list(args), env={"COLUMNS": "160"})
    assert outcome.exit_code == code, outcome.output
    assert "Traceback" not in outcome.output
    return outcome.output


def test_the_season_ran_a_week_of_each_year_before_the_flows(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, printed = demo
    assert result.ads is not None
    season = result.ads.season
    assert len(season.windows) == DEMO_YEARS
    assert season.days == DEMO_DAYS
    last = DEMO_AT.date() - timedelta(days=1)
    assert last == AD_SEASON_ENDS
    sampled = set()
    for n, (begins, ends) in enumerate(season.windows):
        assert ends - begins == timedelta(days=DEMO_DAYS)
        assert ends - timedelta(days=1) == last.replace(year=last.year - DEMO_YEARS + 1 + n)
        sampled |= {begins + timedelta(days=d) for d in range(DEMO_DAYS)}
    # The store holds charges on exactly the sampled days, and each is closed in the ledger.
    charged = {
        date.fromisoformat(d) for (d,) in store_rows(folder, "SELECT DISTINCT day FROM ads_spend")
    }
    closed = {
        date.fromisoformat(d)
        for (d,) in store_rows(folder, "SELECT DISTINCT day FROM ads_spend_days")
    }
    assert charged == closed == sampled
    assert season.result.days == len(sampled) == DEMO_YEARS * DEMO_DAYS
    assert season.result.requests > 0
    assert (
        season.result.impressions
        == store_rows(folder, "SELECT count(*) FROM ads_impressions")[0][0]
    )
    assert f"{DEMO_DAYS} days in each of {DEMO_YEARS} years" in printed
    # Every ad_spend entry comes before the flows in the ledger, as in time.
    with Accord.open(data_dir=folder / "data") as accord:
        leaves = [accord.ledger.leaf(i).entry() for i in range(accord.ledger.head().size)]
    spends = [n for n, e in enumerate(leaves) if e["kind"] == "ad_spend"]
    flows = [n for n, e in enumerate(leaves) if e["kind"] in ("decision", "release")]
    assert spends
    assert flows
    assert max(spends) < min(flows)
    assert max(e["at"] for e in leaves if e["kind"] == "ad_spend") < DEMO_AT.isoformat()


def test_each_years_budgets_are_scaled_to_its_sampled_days_and_held(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    season = result.ads.season
    with Accord.open(data_dir=folder / "data") as accord:
        campaigns = AdsStore(accord.engine, "chirp").campaigns()
    assert len(campaigns) == len(season.campaigns)
    for n, (year, yearly, sampled) in enumerate(season.reelix_budgets()):
        assert year == season.windows[n][0].year
        filed = REELIX_YEARLY[n] * PEOPLE / SCALE_AUDIENCE * MICROS
        assert yearly == round(filed)
        assert abs(sampled - filed * DEMO_DAYS / 365) <= 2
    windows = set(season.windows)
    spent: dict[int, int] = defaultdict(int)
    by_day: dict[tuple[int, str], int] = defaultdict(int)
    for campaign, day, micros in store_rows(
        folder, "SELECT campaign_id, day, amount_micros FROM ads_spend"
    ):
        spent[campaign] += micros
        by_day[(campaign, day)] += micros
    for c in campaigns:
        # Each campaign runs in one sampled week, its budget that week's share of a year's.
        assert (c.schedule.start.date(), c.schedule.end.date()) in windows  # type: ignore[union-attr]
        assert c.lifetime_budget is not None
        assert c.daily_budget == c.lifetime_budget // DEMO_DAYS
        assert spent[c.id] <= c.lifetime_budget
    daily = {c.id: c.daily_budget for c in campaigns}
    for (campaign, _), micros in by_day.items():
        assert micros <= day_cap(daily[campaign])


def test_spend_reconciles_with_the_invoices_and_the_ledger(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    season = result.ads.season
    assert season.unreconciled == ()
    ((total, charges),) = store_rows(folder, "SELECT sum(amount_micros), count(*) FROM ads_spend")
    with Accord.open(data_dir=folder / "data") as accord:
        book = SpendBook(accord.engine, accord.ledger, "chirp")
        invoices = book.invoices()
        assert all(book.reconcile(i.id) == [] for i in invoices)
        leaves = [accord.ledger.leaf(i).entry() for i in range(accord.ledger.head().size)]
        assert verify_ledger(accord.ledger).ok
    assert len(invoices) == season.invoices > 0
    # One invoice per advertiser and month with charges: every sampled week is in November.
    assert {i.month for i in invoices} == {f"{b.year}-{b.month:02d}" for b, _ in season.windows}
    assert sum(i.total for i in invoices) == total > 0
    assert sum(i.charges for i in invoices) == charges
    entries = [e for e in leaves if e["kind"] == "ad_spend"]
    days = store_rows(folder, "SELECT count(*) FROM ads_spend_days")[0][0]
    assert len(entries) == days == season.result.ledger_entries
    assert sum(e["amount_micros"] for e in entries) == total
    assert all(e["subjects"] == [] and e["people"] == 0 for e in entries)
    money = result.ads.money
    assert money.spend_entries == len(entries)
    assert money.spend_in_ledger == money.spend == total


def test_reelix_is_the_largest_advertiser_in_the_filings_shape(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, _, _ = demo
    assert result.ads is not None
    rows = result.ads.money.rows
    assert rows[0].advertiser == "reelix"
    years = sorted({r.period for r in rows})
    assert years == [str(b.year) for b, _ in result.ads.season.windows]
    reelix = {r.period: r.spend for r in rows if r.advertiser == "reelix"}
    for year in years:
        others = [r.spend for r in rows if r.period == year and r.advertiser != "reelix"]
        assert reelix[year] > max(others)
    # Its yearly spend rises as the filings' budgets do, and stays within them.
    first, second, third = (reelix[y] for y in years)
    assert first < second < third
    for (_, _, sampled), year in zip(result.ads.season.reelix_budgets(), years, strict=True):
        assert 0.8 * sampled <= reelix[year] <= sampled


def test_the_data_access_beside_the_money_is_what_the_flows_did(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    reelix = {r.period: r.access for r in result.ads.money.rows if r.advertiser == "reelix"}
    flows_year = str(DEMO_AT.year)
    for year, access in reelix.items():
        assert access is not None
        assert access.party == "reelix"
        if year != flows_year:
            # The partnership's agreements are valid from 2026: before, money and no access.
            assert (access.clauses, access.allowed, access.refused, access.records) == (0, 0, 0, 0)
    access = reelix[flows_year]
    assert access is not None
    with Accord.open(data_dir=folder / "data") as accord:
        registered = {r.agreement.id: r for r in accord.agreements()}
    in_force = [a for a, r in registered.items() if r.in_force(DEMO_AT.date())]
    # With the partner-ads agreement Reelix's data reached Chirp's ads under (after the flows).
    assert access.agreements == tuple(sorted(in_force))
    assert access.agreements == ("chirp-reelix", "chirp-reelix-cleanroom", PARTNER_ADS)
    assert access.clauses == sum(len(registered[a].agreement.clauses) for a in in_force)
    flows = result.flows
    partner = partner_ads_access(folder)
    assert access.allowed == sum(f.allowed for f in flows) + partner["allowed"] > 0
    assert access.refused == sum(f.refused for f in flows) + partner["refused"] > 0
    assert access.people == sum(f.people for f in flows) + partner["people"] > 0
    assert access.records == sum(f.records for f in flows) > 0
    to_reelix = sum(f.records for f in flows if f.recipient == "reelix")
    assert (access.received, access.given) == (to_reelix, access.records - to_reelix)
    assert all(r.access is None for r in result.ads.money.rows if r.advertiser != "reelix")


def test_accord_ads_spend_prints_the_money_beside_the_data(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    data = str(folder / "data")
    printed = json.loads(run("ads", "spend", "--json", "--data-dir", data))
    assert printed["by"] == "year"
    rows = {(r["advertiser"], r["period"]): r for r in printed["rows"]}
    for row in result.ads.money.rows:
        shown = rows[(row.advertiser, row.period)]
        assert shown["spend_micros"] == row.spend
        assert shown["days"] == DEMO_DAYS
        if row.access is None:
            assert shown["access"] is None
            continue
        access = shown["access"]
        assert access["clauses_in_force"] == row.access.clauses
        assert access["exchanges_allowed"] == row.access.allowed
        assert access["exchanges_refused"] == row.access.refused
        assert access["people_let_through"] == row.access.people
        assert access["records_released"] == row.access.records
    assert printed["ledger"]["ad_spend_entries"] == result.ads.money.spend_entries
    table = run("ads", "spend", "--data-dir", data)
    words = " ".join(table.split())
    reelix = rows[("reelix", str(DEMO_AT.year))]["access"]
    assert f"{reelix['clauses_in_force']} clauses in force" in words
    assert (
        f"exchanges {reelix['exchanges_allowed']:,} allowed, {reelix['exchanges_refused']} refused"
        in words
    )
    assert "no clause in force; no exchange; nothing released" in words
    assert "│ none" in table
    assert "the same as the spend records" in words
    assert table.index("Reelix") < table.index("Northwind Shoes")


def test_the_report_shows_the_money_beside_the_data(demo: tuple[DemoResult, Path, str]) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    html = (folder / "accord-report.html").read_text()
    section = html[
        html.index('<section id="money">') : html.index(
            "</section>", html.index('<section id="money">')
        )
    ]
    assert '<h2 id="ads">The money beside the data</h2>' in section
    assert 'id="ads-chart"' in section
    assert "side by side" in section
    assert f"{DEMO_DAYS} days of each year" in section
    entries = f'<span id="ads-entries">{result.ads.money.spend_entries:,}</span>'
    assert entries in section
    assert "accord ledger verify" in section
    for row in result.ads.money.rows:
        assert f'data-advertiser="{row.advertiser}" data-period="{row.period}"' in section
    assert section.count("none: not a party to any agreement") == 5
    assert "accord ads spend" in html.split('id="check-it-yourself"')[1]


def test_the_same_seed_runs_the_same_season(
    demo: tuple[DemoResult, Path, str], tmp_path: Path
) -> None:
    _, folder, _ = demo
    again = tmp_path / "data"
    run(
        "demo",
        "--people",
        str(PEOPLE),
        "--seed",
        str(SEED),
        "--no-audit",
        "--data-dir",
        str(again),
        "--report",
        str(tmp_path / "r.html"),
    )
    first = json.loads(run("ads", "spend", "--json", "--data-dir", str(folder / "data")))
    second = json.loads(run("ads", "spend", "--json", "--data-dir", str(again)))
    assert first == second
    query = (
        "SELECT campaign_id, day, impressions, clicks, amount_micros FROM ads_spend_days "
        "ORDER BY campaign_id, day"
    )
    assert store_rows(folder, query) == store_rows(tmp_path, query)


def test_a_population_too_small_for_the_season_leaves_it_out_or_says_why(tmp_path: Path) -> None:
    args = ["demo", "--people", "150", "--no-audit", "--report", str(tmp_path / "r.html")]
    out = run(*args, "--data-dir", str(tmp_path / "a"))
    assert "Chirp's ad season was not run" in " ".join(out.split())
    assert 'id="ads"' not in (tmp_path / "r.html").read_text()
    out = run(*args, "--ads", "--data-dir", str(tmp_path / "b"), code=2)
    words = " ".join(out.split())
    assert "too few" in words
    assert "--no-ads" in words
    assert not (tmp_path / "b").exists()  # refused before anything was written


def test_spend_beside_access_is_read_from_the_store_alone(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    assert result.ads is not None
    with Accord.open(data_dir=folder / "data") as accord:
        monthly = spend_beside_access(accord.engine, "chirp", by="month")
    assert {r.period for r in monthly.rows} == {
        f"{b.year}-{b.month:02d}" for b, _ in result.ads.season.windows
    }
    assert monthly.spend == result.ads.money.spend
    assert monthly.spend_entries == result.ads.money.spend_entries


def test_the_auditors_console_shows_each_advertisers_spend_beside_its_access(
    demo: tuple[DemoResult, Path, str],
) -> None:
    """``/audit/money``, against the spend records read here with SQL and the demo's own tally
    of its flows: Reelix's money and its data access, year by year; the other advertisers no
    party to any agreement; the ledger's spend entries against the records; no person named."""
    import httpx

    from accord.ads.model import show_money
    from accord.api import create_app
    from api.world import serving

    result, folder, _ = demo
    spend = {
        (advertiser, year): int(micros)
        for advertiser, year, micros in store_rows(
            folder,
            "SELECT advertiser, substr(day, 1, 4), sum(amount_micros) FROM ads_spend "
            "GROUP BY advertiser, substr(day, 1, 4)",
        )
    }
    flows_year = str(DEMO_AT.year)
    with (
        Accord.open(data_dir=folder / "data") as accord,
        serving(create_app(accord, {})) as url,
        httpx.Client(base_url=url) as c,
    ):
        page = c.get("/audit/money")
        by_month = c.get("/audit/money?by=month")
        wrong = c.get("/audit/money?by=week")
    assert page.status_code == 200, page.text
    html = page.text

    def row(advertiser: str, period: str) -> list[str]:
        found = re.search(
            rf'<tr data-advertiser="{advertiser}" data-period="{period}">(.*?)</tr>', html, re.S
        )
        assert found, (advertiser, period)
        return [
            re.sub(r"<[^>]+>", "", cell).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", found.group(1), re.S)
        ]

    for (advertiser, year), micros in spend.items():
        cells = row(advertiser, year)
        assert cells[2] == show_money(micros)
        if advertiser != "reelix":
            assert "not a party to any agreement" in cells[-1]
    flows = result.flows
    to_reelix = sum(f.records for f in flows if f.recipient == "reelix")
    reelix = row("reelix", flows_year)
    assert reelix[6] == f"chirp-reelix, chirp-reelix-cleanroom, {PARTNER_ADS}"
    partner = partner_ads_access(folder)
    assert reelix[7:] == [
        f"{sum(f.allowed for f in flows) + partner['allowed']:,}",
        f"{sum(f.refused for f in flows) + partner['refused']:,}",
        f"{sum(f.people for f in flows) + partner['people']:,}",
        f"{to_reelix:,}",
        f"{sum(f.records for f in flows) - to_reelix:,}",
    ]
    assert 'id="ledger-check-chirp"' in html
    assert not re.search(r"\b[cr]\d{7}\b", html)  # no person's id on a public page
    assert by_month.status_code == 200
    assert f'data-period="{flows_year}-' in by_month.text
    assert wrong.status_code == 400
    assert "year or month" in wrong.text


# -- Reelix's data in Chirp's ads: audiences, lift, the click model's cards, value and cost ------


def ledger_tail(folder: Path, limit: int = 400) -> list[dict[str, Any]]:
    with Accord.open(data_dir=folder / "data") as accord:
        return [leaf.entry() for leaf in reversed(accord.ledger.recent(limit))]


def test_the_demo_shows_partner_data_in_ads(demo: tuple[DemoResult, Path, str]) -> None:
    result, folder, printed = demo
    p = result.partner
    assert p is not None
    assert p.ads.audience is not None
    assert p.ads.rebuilt is not None
    assert p.ads.withdrawn == WITHDRAWALS
    assert p.ads.lookalike is not None
    assert p.ads.recall is not None
    assert "Reelix's data in Chirp's ads" in printed
    assert "proven absent" in printed
    assert f"replaces {p.first.card.model}" in printed
    html = (folder / "accord-report.html").read_text()
    start = html.index('<section id="partner">')
    section = html[start : html.index("</section>", start)]
    assert "Partner data in ads" in section
    assert f'<td class="n" id="partner-audience">{p.ads.audience:,}</td>' in section
    assert f'<td class="n" id="partner-rebuilt">{p.ads.rebuilt:,}</td>' in section
    for shown in (p.first, p.second):
        assert f'data-model="{shown.card.model}"' in section
        assert f"{shown.auc:.4f}" in section
        assert f"{shown.index:,}" in section
    assert (
        f"<code>{p.first.card.model}</code>"
        in section.split(f'data-model="{p.second.card.model}"')[1]
    )
    assert 'id="partner-value-facts"' in section
    assert f'<strong id="partner-people">{p.first.card.partner_people:,}</strong>' in section
    assert f"{p.auc_with:.4f} / {p.auc_without:.4f}" in section
    assert 'class="allowed" id="partner-absent"' in section
    # The person forgotten is named nowhere in the report.
    assert p.withdrawn not in html


def test_the_withdrawn_persons_partner_rows_leave_the_next_model(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    p = result.partner
    assert p is not None
    first, second = p.first.card, p.second.card
    assert second.replaces == first.model
    assert first.replaces is None
    # Only the shards that held the person were retrained (SISA); the others are the same lists.
    assert second.retrained
    assert len(second.retrained) < second.shards
    for k in range(second.shards):
        same = first.list_named(f"shard-{k}").sha256 == second.list_named(f"shard-{k}").sha256
        assert same
        changed = (
            first.list_named(f"shard-{k}-partner").sha256
            != second.list_named(f"shard-{k}-partner").sha256
        )
        assert changed == (k in second.retrained)
    assert second.partner_people == first.partner_people - 1
    assert absent_from(second, p.withdrawn, p.partner_lists)
    # A list doctored to hide the person does not match the card's fingerprint.
    doctored = {name: (*people, p.withdrawn) for name, people in p.partner_lists.items()}
    with pytest.raises(InvalidInput):
        absent_from(second, p.withdrawn, doctored)
    # The consent records: the person's member withdrew the consent the model relied on.
    member = "r" + p.withdrawn[1:]
    with Accord.open(data_dir=folder / "data") as accord:
        consents = accord.consents("reelix", member)
    covering = [
        c
        for c in consents
        if c.covers(recipient="chirp", purpose=TARGETED_ADS, category=MEDIA_CONSUMPTION)
    ]
    assert covering
    assert all(c.withdrawn_at is not None for c in covering)
    cards = [e for e in ledger_tail(folder) if e.get("kind") == "model_card"]
    assert [e["model"] for e in cards] == [first.model, second.model]
    assert cards[1]["replaces"] == first.model
    assert json.loads(cards[1]["card"])["retrained"] == list(second.retrained)


def test_the_rebuilt_audience_lost_only_withdrawn_members(
    demo: tuple[DemoResult, Path, str],
) -> None:
    result, folder, _ = demo
    p = result.partner
    assert p is not None
    assert p.ads.audience is not None
    assert p.ads.rebuilt is not None
    audience = f"reelix-{p.ads.genre}-viewers".lower().replace(" ", "-")[:64]
    built = [
        e for e in ledger_tail(folder) if e.get("kind") == "audience" and e["audience"] == audience
    ]
    assert [e["change"] for e in built] == ["built", "rebuilt"]
    # Oracle from the consent records: the members who withdrew the ads consent after the flows
    # (but the one erased after them and the one whose withdrawal the click model forgot), and
    # their Chirp accounts (the same e-mail address).
    assert result.erasure is not None
    with Accord.open(data_dir=folder / "data") as accord, accord.session() as s:
        facts = ConsentRepository(s).facts("reelix")
    withdrawn = {
        person
        for person, f in facts.items()
        for c in f.consents
        if c.withdrawn_at is not None
        and c.withdrawn_at > DEMO_AT
        and c.covers(recipient="chirp", purpose=TARGETED_ADS, category=MEDIA_CONSUMPTION)
        and person not in (result.erasure.person, "r" + p.withdrawn[1:])
    }
    assert len(withdrawn) == WITHDRAWALS
    data = folder / "data" / "parties"
    with closing(sqlite3.connect(data / "reelix.db")) as db:
        emails = dict(db.execute("SELECT member_id, email FROM members"))
    with closing(sqlite3.connect(data / "chirp.db")) as db:
        chirp = {e: c for c, e in db.execute("SELECT person_id, email FROM people")}
    left = {chirp[emails[m]] for m in withdrawn if emails[m] in chirp}
    with closing(sqlite3.connect(folder / "data" / "accord.db")) as db:
        rows = db.execute(
            "SELECT person FROM ads_audience_members WHERE audience_id = ?", (audience,)
        ).fetchall()
    members = {person for (person,) in rows}
    assert len(members) == p.ads.rebuilt
    assert not members & left
    assert member_digest(members) == built[1]["digest"]
    # The first audience was the rebuilt one plus the withdrawn members who were in it.
    gone = p.ads.audience - p.ads.rebuilt
    before = [
        set(chosen)
        for k in range(len(left) + 1)
        for chosen in combinations(sorted(left), k)
        if member_digest(members | set(chosen)) == built[0]["digest"]
    ]
    assert len(before) == 1
    assert len(before[0]) == gone


def test_the_auditors_replay_agrees_with_every_partner_data_release(
    demo: tuple[DemoResult, Path, str],
) -> None:
    _, folder, _ = demo
    out = run("audit", "--data-dir", str(folder / "data"))
    assert "No differences" in out or "no differences" in out


def test_the_value_and_cost_of_partner_data(demo: tuple[DemoResult, Path, str]) -> None:
    result, folder, _ = demo
    p = result.partner
    assert p is not None
    assert p.revenue_with > 0
    assert p.revenue_without > 0
    assert 0.5 < p.auc_with < 1
    assert 0.5 < p.auc_without < 1
    assert 0 < p.value_partner_people < p.value_people
    # The people whose partner data trained the model are those whose consent covered it.
    assert 0 < p.first.card.partner_people < p.first.card.people
    spent = store_rows(
        folder,
        "SELECT COALESCE(SUM(people), 0) FROM privacy_spends "
        "WHERE agreement = 'chirp-reelix-partner-ads'",
    )
    assert p.budget_people == spent[0][0]
    assert (p.epsilon_each > 0) == (p.ads.lift is not None)
