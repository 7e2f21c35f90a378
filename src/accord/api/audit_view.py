"""What the auditor's console shows, computed from the ledger's leaves, naming no person.

* :func:`ledger_entries`: the decoded leaves of some kinds, in ledger order.
* :func:`lifecycles`: each agreement's lifecycle history from its ``agreement`` entries.
* :func:`flow_map`: releases counted by party, data category and purpose (how many releases and
  how many people they concerned, never who), and refusals counted by reason and rule.
* :func:`sankey_svg`: the flow map drawn as a Sankey diagram, as SVG made on the server.

A leaf's ``subjects`` (the people's pseudonyms) are never read here: only counts leave this module.
"""

from __future__ import annotations

import threading
import weakref
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from json.encoder import encode_basestring
from typing import Any

from sqlalchemy import bindparam, select

from accord.errors import InvalidInput, StoreError, translate
from accord.ledger.browse import CHUNK
from accord.ledger.entries import decode_leaf
from accord.ledger.log import Ledger
from accord.ledger.notes import notes_on
from accord.ledger.tables import leaves_table

NO_PURPOSE = "(no purpose recorded)"
"""The purpose node of a release whose leaf names none."""


@dataclass(frozen=True, slots=True)
class Logged:
    """One decoded leaf: its index and its fields (``subjects`` dropped)."""

    index: int
    entry: dict[str, Any]

    @property
    def at(self) -> datetime | None:
        text = self.entry.get("at")
        if not isinstance(text, str):
            return None
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None


def ledger_entries(ledger: Ledger, kinds: Iterable[str]) -> list[Logged]:
    """Every readable leaf of ``kinds``, oldest first, without its subjects.

    The ledger only grows and a leaf never changes, so what was read is kept (per ledger and
    set of kinds) and each call reads only the leaves appended since the last: a console page
    costs the new leaves, not the whole log. Callers get a list of their own."""
    wanted = frozenset(kinds)
    with _CACHE_LOCK:
        per_ledger = _CACHE.setdefault(ledger, {})
        seen = per_ledger.setdefault(wanted, _Read())
    with seen.lock:
        seen.read_since(ledger, [f'"kind":{encode_basestring(k)}'.encode() for k in wanted])
        return list(seen.entries)


class _Read:
    """The leaves of some kinds read so far from one ledger, and the next index to read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.next = 0
        self.entries: list[Logged] = []

    def read_since(self, ledger: Ledger, wanted: list[bytes]) -> None:
        leaves = leaves_table.c
        query = select(leaves.idx, leaves.data).where(leaves.idx >= bindparam("since"))
        with translate(StoreError, "reading the ledger's entries"), ledger.engine.connect() as c:
            while True:
                rows = c.execute(
                    query.order_by(leaves.idx).limit(CHUNK), {"since": self.next}
                ).all()
                if not rows:
                    return
                for idx, data in rows:
                    raw = bytes(data)
                    if not any(w in raw for w in wanted):
                        continue
                    try:
                        entry = decode_leaf(raw)
                    except InvalidInput:
                        continue
                    entry.pop("subjects", None)
                    self.entries.append(Logged(int(idx), entry))
                self.next = int(rows[-1][0]) + 1


_CACHE: weakref.WeakKeyDictionary[Ledger, dict[frozenset[str], _Read]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an agreement's lifecycle as the ledger recorded it."""

    index: int
    at: datetime | None
    from_status: str | None
    to_status: str
    actor: str | None
    reason: str


def lifecycles(entries: Iterable[Logged]) -> dict[str, list[Step]]:
    """Each agreement's lifecycle steps in ledger order, by agreement id."""
    out: dict[str, list[Step]] = defaultdict(list)
    for logged in entries:
        e = logged.entry
        if e.get("kind") != "agreement" or not isinstance(e.get("agreement"), str):
            continue
        out[e["agreement"]].append(
            Step(
                logged.index,
                logged.at,
                e.get("from_status"),
                str(e.get("to_status")),
                e.get("actor"),
                str(e.get("reason", "")),
            )
        )
    return dict(out)


@dataclass(frozen=True, slots=True)
class Window:
    """Which entries the flow map counts: from ``since`` to ``until`` (days, both included),
    under ``agreement`` (any if ``None``)."""

    since: date | None = None
    until: date | None = None
    agreement: str | None = None

    @classmethod
    def parse(cls, since: str, until: str, agreement: str) -> Window:
        """The window a GET form asks for; :class:`InvalidInput` names a field that is wrong."""
        first = _day("from", since)
        last = _day("to", until)
        if first is not None and last is not None and last < first:
            raise InvalidInput(
                f"the date range ends ({last.isoformat()}) before it starts ({first.isoformat()})"
            )
        return cls(first, last, agreement.strip() or None)

    def holds(self, logged: Logged) -> bool:
        """Whether the entry falls in the window."""
        if self.agreement is not None and logged.entry.get("agreement") != self.agreement:
            return False
        if self.since is None and self.until is None:
            return True
        at = logged.at
        if at is None:
            return False
        start = datetime.combine(self.since or date.min, time.min, UTC)
        if at < start:
            return False
        return self.until is None or at < datetime.combine(self.until, time.min, UTC) + timedelta(
            days=1
        )


def _day(name: str, text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"the {name!r} date {text[:40]!r} is not a date: write it as YYYY-MM-DD"
        ) from None


@dataclass(frozen=True, slots=True)
class Link:
    """A band of the flow map: ``releases`` went from ``source`` to ``target`` (a party, a data
    category, a purpose), concerning ``people`` people summed over those releases."""

    stage: int
    source: str
    target: str
    releases: int
    people: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Refused requests that gave one reason under the same rules."""

    reason: str
    rules: tuple[str, ...]
    requests: int
    people: int


@dataclass(frozen=True, slots=True)
class FlowMap:
    """Releases by party, category and purpose, and refusals by reason, in one window."""

    links: list[Link]
    releases: int
    people: int
    refusals: list[Refusal]
    by_rule: list[tuple[str, int]]
    allowed: int = 0
    parties: list[tuple[str, str, int, int]] = field(default_factory=list)
    """(provider, recipient, releases, people) for each pair of parties."""
    never_received: int = 0
    """Releases in the window that a later entry says never reached their recipient (see
    :func:`accord.ledger.notes.undone_release`): left out of the flows and the counts above."""

    @property
    def refused(self) -> int:
        return sum(r.requests for r in self.refusals)


HOLDS, RECEIVES = "{} (holds)", "{} (receives)"


def flow_map(entries: Iterable[Logged], window: Window) -> FlowMap:
    """Count the ``release`` and ``decision`` entries in ``window``.

    A release adds one to the band from its provider to each of its data categories, from each
    category to its purpose, and from its purpose to its recipient, with the number of people it
    concerned; so a release under two categories counts once under each. A release that a
    later entry says never reached its recipient (its caller was answered that nothing was
    released, or writing it failed) is left out, and counted apart.
    """
    entries = list(entries)
    undone = notes_on((logged.index, logged.entry) for logged in entries)
    never = 0
    releases: Counter[tuple[int, str, str]] = Counter()
    people: Counter[tuple[int, str, str]] = Counter()
    pairs: Counter[tuple[str, str]] = Counter()
    pair_people: Counter[tuple[str, str]] = Counter()
    refusals: Counter[tuple[str, tuple[str, ...]]] = Counter()
    refused_people: Counter[tuple[str, tuple[str, ...]]] = Counter()
    rules: Counter[str] = Counter()
    total = total_people = allowed = 0
    for logged in entries:
        e = logged.entry
        kind = e.get("kind")
        if kind not in ("release", "decision") or not window.holds(logged):
            continue
        n = int(e.get("people") or 0)
        if kind == "decision":
            if e.get("allowed"):
                allowed += 1
                continue
            key = (str(e.get("reason", "")), tuple(str(r) for r in e.get("rules") or ()))
            refusals[key] += 1
            refused_people[key] += n
            rules.update(set(key[1]))
            continue
        if logged.index in undone:
            never += 1
            continue
        provider, recipient = str(e.get("provider")), str(e.get("recipient"))
        purpose = str(e.get("purpose") or NO_PURPOSE)
        holder, receiver = HOLDS.format(provider), RECEIVES.format(recipient)
        hops = [(0, holder, str(c)) for c in e.get("categories") or ()]
        hops += [(1, str(c), purpose) for c in e.get("categories") or ()]
        hops.append((2, purpose, receiver))
        for hop in hops:
            releases[hop] += 1
            people[hop] += n
        pairs[provider, recipient] += 1
        pair_people[provider, recipient] += n
        total += 1
        total_people += n
    links = [Link(s, a, b, releases[s, a, b], people[s, a, b]) for s, a, b in sorted(releases)]
    return FlowMap(
        links=links,
        releases=total,
        people=total_people,
        refusals=sorted(
            (Refusal(r, ru, refusals[r, ru], refused_people[r, ru]) for r, ru in refusals),
            key=lambda x: (-x.requests, x.reason),
        ),
        by_rule=sorted(rules.items(), key=lambda x: (-x[1], x[0])),
        allowed=allowed,
        parties=[(p, r, pairs[p, r], pair_people[p, r]) for p, r in sorted(pairs)],
        never_received=never,
    )


# -- drawing ---------------------------------------------------------------------------------------

WIDTH, HEIGHT = 1000, 460
_NODE_W, _PAD, _TOP = 14, 14, 28
_STAGES = ("Holder", "Data category", "Purpose", "Recipient")


@dataclass(frozen=True, slots=True)
class _Node:
    label: str
    column: int
    x: float
    y: float
    height: float


def sankey_svg(links: Sequence[Link]) -> dict[str, Any]:
    """The flow map laid out as a Sankey diagram: nodes and bands for a template to draw.

    Columns are the holding party, the data category, the purpose and the receiving party; a
    node is as tall as the larger of what enters and what leaves it, a band as wide as its count
    of releases.
    """
    columns: list[dict[str, list[int]]] = [defaultdict(lambda: [0, 0]) for _ in range(4)]
    for link in links:
        columns[link.stage][link.source][1] += link.releases
        columns[link.stage + 1][link.target][0] += link.releases
    usable = HEIGHT - _TOP - 10
    scales = []
    for column in columns:
        if column:
            total = sum(max(v) for v in column.values())
            scales.append((usable - _PAD * (len(column) - 1)) / max(total, 1))
    scale = min(scales) if scales else 1.0
    step = (WIDTH - _NODE_W) / 3
    nodes: dict[tuple[int, str], _Node] = {}
    for i, column in enumerate(columns):
        y = float(_TOP)
        for label in sorted(column):
            h = max(max(column[label]) * scale, 1.0)
            nodes[i, label] = _Node(label, i, i * step, y, h)
            y += h + _PAD
    out_at: defaultdict[tuple[int, str], float] = defaultdict(float)
    in_at: defaultdict[tuple[int, str], float] = defaultdict(float)
    bands = []
    for link in sorted(links, key=lambda k: (k.stage, k.source, k.target)):
        a, b = nodes[link.stage, link.source], nodes[link.stage + 1, link.target]
        w = link.releases * scale
        y0 = a.y + out_at[link.stage, link.source] + w / 2
        y1 = b.y + in_at[link.stage + 1, link.target] + w / 2
        out_at[link.stage, link.source] += w
        in_at[link.stage + 1, link.target] += w
        x0, x1 = a.x + _NODE_W, b.x
        mid = (x0 + x1) / 2
        bands.append(
            {
                "d": f"M{x0:.1f},{y0:.1f} C{mid:.1f},{y0:.1f} {mid:.1f},{y1:.1f} {x1:.1f},{y1:.1f}",
                "width": f"{max(w, 1.0):.1f}",
                "stage": link.stage,
                "link": link,
            }
        )
    labels = []
    for node in nodes.values():
        right = node.column < 2
        labels.append(
            {
                "node": node,
                "w": _NODE_W,
                "tx": f"{node.x + _NODE_W + 6 if right else node.x - 6:.1f}",
                "ty": f"{node.y + node.height / 2:.1f}",
                "anchor": "start" if right else "end",
            }
        )
    heads = [
        {"x": f"{i * step + (0 if i < 2 else _NODE_W):.1f}", "text": t, "anchor": "start"}
        if i < 2
        else {"x": f"{i * step + _NODE_W:.1f}", "text": t, "anchor": "end"}
        for i, t in enumerate(_STAGES)
    ]
    return {"width": WIDTH, "height": HEIGHT, "bands": bands, "nodes": labels, "heads": heads}
