"""The demo's HTML report: what flowed from whom to whom, what was refused and why, and the proof.

One self-contained file (``accord-report.html``) a person can open without a network: a Sankey
chart of the records released, from the party holding them through their data category and
purpose to the party receiving them (Plotly, its JavaScript inlined), the people each rule kept out,
a table per flow, the refusals with their reasons, and the ledger's signed checkpoint with the
verifier key to check it. Rendered with Jinja2, every value escaped.
"""

from __future__ import annotations

from collections import Counter
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader, select_autoescape

from accord.errors import InvalidInput

if TYPE_CHECKING:
    from accord.scenario.demo import DemoResult, FlowResult

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


def render(result: DemoResult, *, at: datetime | None = None) -> str:
    """The report as HTML text."""
    template = _env.get_template("report.html.j2")
    return template.render(
        result=result,
        flows=[f for f in result.flows if not f.abuse],
        abuses=[f for f in result.flows if f.abuse],
        sankey=_sankey(result.flows),
        kept_out=_kept_out(result.flows),
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
