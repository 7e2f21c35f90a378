"""The demo's HTML report: what flowed from whom to whom, what was refused and why, and the proof.

One self-contained file (``accord-report.html``) a person can open without a network: a Sankey
chart of the records released, from the party holding them through their data category and
purpose to the party receiving them (Plotly, its JavaScript inlined), the people each rule kept out,
a table per flow, the refusals with their reasons, the money beside the data (Reelix's yearly
ad spend beside the filings' amounts and its data access, and every advertiser's spend beside its
party's access), the partner's data in ads (audiences, lift, the click model's cards, and what
the data bought beside what it cost), and the ledger's signed checkpoint with the verifier key to
check it. Rendered with Jinja2, every value escaped.
"""

from __future__ import annotations

import math
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, select_autoescape

from accord.ads.access import Access, AdvertiserPeriod
from accord.ads.model import MICROS, show_money
from accord.errors import InvalidInput
from accord.scenario.ads import REELIX_ADVERTISER, REELIX_YEARLY

if TYPE_CHECKING:
    from accord.scenario.demo import AdsShown, DemoResult, FlowResult

_env = Environment(
    loader=PackageLoader("accord.scenario", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)

HOLDS, RECEIVES = "{} (holds)", "{} (receives)"


def sankey_links(flows: list[FlowResult]) -> list[tuple[str, str, str, int]]:
    """``(from, to, holder, records)`` for every hop: holder → category → purpose → receiver.

    Hops are kept apart by the party holding the data, so each can be drawn in its colour. A flow
    released under several categories splits its records evenly between them, so each stage of
    the chart adds up to the records released.
    """
    links: Counter[tuple[str, str, str]] = Counter()
    for f in flows:
        moved = f.moved or len(f.sample)
        if moved <= 0:
            continue
        holder = HOLDS.format(f.provider.capitalize())
        receiver = RECEIVES.format(f.recipient.capitalize())
        share, rest = divmod(moved, len(f.categories))
        for n, category in enumerate(f.categories):
            part = share + (1 if n < rest else 0)
            links[holder, category, f.provider] += part
            links[category, f.purpose, f.provider] += part
        links[f.purpose, receiver, f.provider] += moved
    return [(a, b, party, n) for (a, b, party), n in links.items() if n > 0]


# Each party's data in its own colour; nodes by stage.
_PARTY_COLOURS = ("rgba(31,119,180,0.45)", "rgba(214,39,40,0.40)", "rgba(44,160,44,0.45)")
_NODE_COLOURS = {"party": "#57606a", "category": "#8250df", "purpose": "#bf8700"}


def _sankey(flows: list[FlowResult]) -> str:
    links = sankey_links(flows)
    if not links:
        return "<p>No records were released.</p>"
    labels = sorted({a for a, _, _, _ in links} | {b for _, b, _, _ in links})
    index = {label: i for i, label in enumerate(labels)}
    parties = sorted({party for _, _, party, _ in links})
    colour = {p: _PARTY_COLOURS[i % len(_PARTY_COLOURS)] for i, p in enumerate(parties)}
    categories = {a for a, _, _, _ in links if "(" not in a and a.startswith("user")}

    def node_colour(label: str) -> str:
        if "(" in label:
            return _NODE_COLOURS["party"]
        return _NODE_COLOURS["category" if label in categories else "purpose"]

    figure = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": labels,
                "pad": 18,
                "thickness": 16,
                "color": [node_colour(label) for label in labels],
            },
            link={
                "source": [index[a] for a, _, _, _ in links],
                "target": [index[b] for _, b, _, _ in links],
                "value": [n for _, _, _, n in links],
                "color": [colour[party] for _, _, party, _ in links],
                "customdata": [f"{party.capitalize()}'s data" for _, _, party, _ in links],
                "hovertemplate": "%{customdata}: %{source.label} → %{target.label}"
                "<br>%{value:,} records<extra></extra>",
            },
        )
    )
    figure.update_layout(
        title="Records released, by data category and purpose (coloured by whose data it is)",
        font={"size": 12},
        height=520,
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=True, div_id="flows-sankey"))


def _kept_out(flows: list[FlowResult]) -> str:
    totals: Counter[str] = Counter()
    for f in flows:
        totals.update(f.kept_out)
    if not totals:
        return ""
    rules = sorted(totals, key=lambda r: totals[r])
    figure = go.Figure(go.Bar(x=[totals[r] for r in rules], y=rules, orientation="h"))
    figure.update_layout(
        title="People kept out by each rule, summed over the flows",
        height=120 + 28 * len(rules),
        margin={"l": 20, "r": 20, "t": 50, "b": 20},
        yaxis={"automargin": True},
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=False, div_id="kept-out"))


@dataclass(frozen=True, slots=True)
class ReelixYear:
    """One year of the season for the partner: its budget, what it was charged, its access."""

    year: str
    filed: int
    """The filings' amount for the year, in dollars."""
    budget: int
    """That amount scaled to the population, for a year (micros)."""
    budget_sampled: int
    """... and for the sampled days: its campaigns' lifetime budgets (micros)."""
    charged: int
    """Charged on the sampled days (micros)."""
    charged_a_year: int
    """Charged on the sampled days times 365 over their number (micros)."""
    access: Access | None


def reelix_years(ads: AdsShown) -> list[ReelixYear]:
    """Reelix's years: the filings' amounts scaled, what it was charged, and its access."""
    by_year = {r.period: r for r in ads.money.rows if r.advertiser == REELIX_ADVERTISER.id}
    years = []
    for n, (year, budget, sampled) in enumerate(ads.season.reelix_budgets()):
        row = by_year.get(str(year))
        charged = row.spend if row is not None else 0
        years.append(
            ReelixYear(
                str(year),
                REELIX_YEARLY[min(n, len(REELIX_YEARLY) - 1)],
                budget,
                sampled,
                charged,
                round(charged * ads.season.scale),
                row.access if row is not None else None,
            )
        )
    return years


_REELIX = "rgba(214,39,40,0.85)"
_FILED = "rgba(87,96,106,0.35)"
_ACCESS = "#8250df"


def _ads_chart(ads: AdsShown, *, with_js: bool) -> str:
    """Reelix's yearly spend as bars beside the filings' amounts scaled to the population, and
    the records released to and from it under its agreements as a line on a second axis."""
    years = reelix_years(ads)
    x = [y.year for y in years]
    dollars = [y.budget / MICROS for y in years]
    charged = [y.charged_a_year / MICROS for y in years]
    records = [y.access.records if y.access is not None else 0 for y in years]
    exchanges = [
        f"{y.access.allowed:,} allowed, {y.access.refused:,} refused; "
        f"{y.access.clauses:,} clauses in force"
        if y.access is not None
        else "no party"
        for y in years
    ]
    days = ads.season.days
    filed = ", ".join(f"${y.filed // 1_000_000}M" for y in years)
    figure = go.Figure()
    figure.add_bar(
        x=x,
        y=dollars,
        name=f"Reelix's budget: the filings' {filed} a year scaled to {ads.season.people:,} people",
        marker_color=_FILED,
        text=[f"${d:,.0f}" for d in dollars],
        textposition="outside",
        hovertemplate="%{x}: budget $%{y:,.2f} a year<extra></extra>",
    )
    figure.add_bar(
        x=x,
        y=charged,
        name=f"Reelix charged: its {days} sampled days × 365/{days}",
        marker_color=_REELIX,
        text=[f"${c:,.0f}" for c in charged],
        textposition="outside",
        hovertemplate="%{x}: charged $%{y:,.2f} at a year's rate<extra></extra>",
    )
    figure.add_scatter(
        x=x,
        y=records,
        name="records released to and from Reelix under its agreements (ledger)",
        yaxis="y2",
        mode="lines+markers+text",
        line={"color": _ACCESS, "width": 3},
        marker={"size": 10},
        text=[f"{r:,} records" for r in records],
        textposition="top center",
        customdata=exchanges,
        hovertemplate="%{x}: %{y:,} records released; exchanges %{customdata}<extra></extra>",
    )
    # The bars fill the lower two thirds, the line's highest point sits above them.
    top = max([*dollars, *charged, 1.0])
    most = max([*records, 1])
    figure.update_layout(
        title="Reelix: its money beside its data access, by year",
        barmode="group",
        height=460,
        margin={"l": 60, "r": 70, "t": 60, "b": 40},
        yaxis={"title": "dollars a year", "range": [0, top * 1.45], "tickprefix": "$"},
        yaxis2={
            "title": "records released (ledger)",
            "overlaying": "y",
            "side": "right",
            "range": [0, most * 1.12],
            "dtick": _step(most),
            "tickformat": ",",
            "showgrid": False,
        },
        legend={"orientation": "h", "y": -0.15},
        font={"size": 12},
    )
    return str(figure.to_html(full_html=False, include_plotlyjs=with_js, div_id="ads-chart"))


def _in_force(years: list[ReelixYear]) -> list[tuple[str, tuple[str, ...], int]]:
    """The years in which some of the partner's agreements were in force: which, how many
    clauses."""
    return [
        (y.year, y.access.agreements, y.access.clauses)
        for y in years
        if y.access is not None and y.access.agreements
    ]


def _by_advertiser(ads: AdsShown) -> list[tuple[str, list[AdvertiserPeriod]]]:
    """The money rows grouped by advertiser, in their order (largest spender first)."""
    groups: dict[str, list[AdvertiserPeriod]] = {}
    for row in ads.money.rows:
        groups.setdefault(row.name, []).append(row)
    return list(groups.items())


def _step(most: int) -> int:
    """A round step for about five ticks up to ``most``: 1, 2 or 5 times a power of ten."""
    rough = max(most / 5, 1)
    power = int(10 ** math.floor(math.log10(rough)))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def render(result: DemoResult, *, at: datetime | None = None) -> str:
    """The report as HTML text."""
    template = _env.get_template("report.html.j2")
    sankey = _sankey(result.flows)
    ads = result.ads
    return template.render(
        result=result,
        flows=[f for f in result.flows if not f.abuse],
        abuses=[f for f in result.flows if f.abuse],
        sankey=sankey,
        kept_out=_kept_out(result.flows),
        ads=ads,
        ads_chart=_ads_chart(ads, with_js="plotly" not in sankey.lower()) if ads else "",
        reelix_years=reelix_years(ads) if ads else [],
        ads_groups=_by_advertiser(ads) if ads else [],
        in_force=_in_force(reelix_years(ads)) if ads else [],
        money=show_money,
        one_day=timedelta(days=1),
        written_at=(at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"),
    )


def write_report(result: DemoResult, path: Path) -> Path:
    """Write the report to ``path`` (written beside it first, then moved into place)."""
    html = render(result)
    partial = path.with_name(path.name + ".partial")
    try:
        partial.write_text(html, encoding="utf-8")
        partial.replace(path)
    except OSError as exc:
        with suppress(OSError):
            partial.unlink(missing_ok=True)
        raise InvalidInput(f"cannot write the report to {path}: {exc.strerror}") from exc
    return path
