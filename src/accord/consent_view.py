"""How ``accord consent list`` shows a person's consents and opt-outs: blocks a person reads in a
100-column terminal, or JSON for scripts.

Each consent is a block of its own (an id, a recipient and taxonomy keys such as
``marketing.advertising.third_party.targeted`` do not fit side by side in 100 columns), titled with
its id, recipient and state; the person's opt-outs follow in one table. Every value a partner
could have written is printed through :func:`accord.console.printable`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from accord.consent import OptOut, Scope
from accord.console import printable
from accord.law import vppa
from accord.standing import PersonStanding, Standing, State

VPPA_NOTE = (
    f"{vppa.CITATION}(ii)(II): a consent a US viewer gives in advance counts for what they watched "
    f"for at most {vppa.MAX_ADVANCE_YEARS} years, whatever expiry it states."
)

_STATE_STYLE = {
    State.IN_FORCE: "green",
    State.NOT_YET_GIVEN: "yellow",
    State.WITHDRAWN: "red",
    State.EXPIRED: "red",
    State.SPENT: "red",
}


def _when(moment: datetime | None) -> str:
    return "—" if moment is None else moment.strftime("%Y-%m-%d %H:%M UTC")


def _day(moment: datetime | None) -> str:
    return "—" if moment is None else moment.date().isoformat()


def _keys(values: frozenset[str] | tuple[str, ...]) -> str:
    return printable(", ".join(sorted(values)))


def titles(s: Standing) -> str:
    """Which titles the consent covers, in words."""
    c = s.consent
    if c.scope is Scope.ONE_DISCLOSURE:
        return f"only {printable(c.disclosure)} (one disclosure)"
    if c.excluded_titles:
        return f"all but {_keys(c.excluded_titles)}"
    return "all"


def expires(s: Standing) -> str:
    """When the consent ends: its stated expiry, and the VPPA's two years where they bind."""
    c = s.consent
    parts = [_when(c.expires_at) if c.expires_at else "no expiry stated"]
    if s.viewing_until is not None and (c.expires_at is None or s.viewing_until < c.expires_at):
        what = "" if vppa.only_viewing(c) else "for what they watched: "
        parts.append(f"{what}{_when(s.viewing_until)} (VPPA: given in advance, two years at most)")
    return "; ".join(parts)


def state(s: Standing) -> str:
    """The consent's state at the instant, with when it changed where that is recorded."""
    c = s.consent
    if s.state is State.WITHDRAWN:
        return f"withdrawn {_day(c.withdrawn_at)}"
    if s.state is State.SPENT:
        return f"spent {_day(s.spent_at)}"
    if s.state is State.EXPIRED:
        return "expired"
    if s.viewing_lapsed:
        return "in force, not for what they watched"
    return s.state.value


def consent_block(s: Standing) -> Panel:
    """One consent as a titled block of its fields."""
    c = s.consent
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("purposes", _keys(c.purposes))
    grid.add_row("categories", _keys(c.categories))
    grid.add_row("operations", _keys(tuple(o.value for o in c.operations)))
    grid.add_row("titles", titles(s))
    grid.add_row("given", _when(c.given_at))
    grid.add_row("expires", expires(s))
    colour = _STATE_STYLE[s.state]
    title = f"{printable(c.id)} → {printable(c.recipient)}"
    return Panel(
        grid,
        title=f"[bold]{title}[/]  [{colour}]{state(s)}[/]",
        title_align="left",
        border_style=colour,
    )


def opt_out_table(p: PersonStanding) -> Table:
    """The person's opt-outs, in force or withdrawn."""
    table = Table(title=f"Opt-outs of {printable(p.person)} at {printable(p.party)}")
    for column in ("controller", "of", "from", "signal", "until", "now"):
        table.add_column(column)
    for o in p.opt_outs:
        live = o.in_force_at(p.at)
        table.add_row(
            printable(o.controller),
            o.kind.value.replace("_", "/"),
            _day(o.at),
            o.source.value,
            _day(o.revoked_at) if o.revoked_at else "—",
            "[red]in force[/]" if live else ("withdrawn" if o.revoked_at else "not yet"),
        )
    return table


def person_view(p: PersonStanding) -> RenderableType:
    """Everything ``accord consent list`` prints for a person."""
    home = printable(p.lives_in) if p.lives_in else "unknown (the party holds no such person)"
    parts: list[RenderableType] = [
        Text.from_markup(
            f"[bold]Consents of {printable(p.person)} at {printable(p.party)}[/] "
            f"(lives in {home}; as of {_when(p.at)})"
        )
    ]
    parts += [consent_block(s) for s in p.consents] or [Text("No consent is recorded.")]
    if any(s.viewing_until is not None for s in p.consents):
        parts.append(Text(VPPA_NOTE, style="dim"))
    if p.opt_outs:
        parts.append(opt_out_table(p))
    else:
        parts.append(Text("No opt-out of sale or sharing is recorded."))
    return Group(*parts)


def _instant(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def opt_out_json(o: OptOut, at: datetime) -> dict[str, Any]:
    """One opt-out as JSON."""
    return {
        "controller": o.controller,
        "kind": o.kind.value,
        "source": o.source.value,
        "at": _instant(o.at),
        "withdrawn_at": _instant(o.revoked_at),
        "in_force": o.in_force_at(at),
    }


def standing_json(s: Standing) -> dict[str, Any]:
    """One consent and where it stands, as JSON."""
    c = s.consent
    return {
        "id": c.id,
        "recipient": c.recipient,
        "purposes": sorted(c.purposes),
        "categories": sorted(c.categories),
        "operations": sorted(o.value for o in c.operations),
        "scope": c.scope.value,
        "titles": {
            "only": c.disclosure if c.scope is Scope.ONE_DISCLOSURE else None,
            "excluded": sorted(c.excluded_titles),
        },
        "jurisdiction": c.jurisdiction,
        "given_at": _instant(c.given_at),
        "expires_at": _instant(c.expires_at),
        "viewing_until": _instant(s.viewing_until),
        "withdrawn_at": _instant(c.withdrawn_at),
        "spent_at": _instant(s.spent_at),
        "state": s.state.value,
    }


def person_json(p: PersonStanding) -> dict[str, Any]:
    """Everything ``accord consent list --json`` prints for a person."""
    return {
        "person": p.person,
        "controller": p.party,
        "lives_in": p.lives_in,
        "at": _instant(p.at),
        "consents": [standing_json(s) for s in p.consents],
        "opt_outs": [opt_out_json(o, p.at) for o in p.opt_outs],
        "opted_out": p.opted_out,
    }
