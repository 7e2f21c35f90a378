"""The console's counting on its own (Hypothesis): every stage of the flow map adds up to the
releases, a window counts what a filter before it would, and the drawing fits its box."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accord.api.audit_view import HEIGHT, WIDTH, Logged, Window, flow_map, sankey_svg
from accord.errors import InvalidInput

pytestmark = pytest.mark.unit

START = datetime(2026, 1, 1, tzinfo=UTC)

release = st.fixed_dictionaries(
    {
        "kind": st.just("release"),
        "provider": st.sampled_from(["chirp", "reelix"]),
        "recipient": st.sampled_from(["chirp", "reelix", "ads"]),
        "categories": st.lists(
            st.sampled_from(["user.social", "user.content.private", "user.behavior"]),
            min_size=1,
            max_size=3,
            unique=True,
        ),
        "purpose": st.sampled_from(["functional.service", "marketing.advertising", None]),
        "agreement": st.sampled_from(["one", "two"]),
        "people": st.integers(0, 50),
        "at": st.integers(0, 60).map(lambda d: (START + timedelta(days=d, hours=5)).isoformat()),
    }
)
decision = st.fixed_dictionaries(
    {
        "kind": st.just("decision"),
        "allowed": st.booleans(),
        "reason": st.sampled_from(["not in force", "no consent", "bulk read"]),
        "rules": st.lists(st.sampled_from(["law:vppa", "agreement:x", "scope"]), unique=True),
        "agreement": st.sampled_from(["one", "two"]),
        "people": st.integers(0, 50),
        "at": st.integers(0, 60).map(lambda d: (START + timedelta(days=d)).isoformat()),
    }
)
ledgers = st.lists(st.one_of(release, decision), max_size=40).map(
    lambda entries: [Logged(i, e) for i, e in enumerate(entries)]
)


def releases_of(entries: list[Logged]) -> list[dict[str, Any]]:
    return [e.entry for e in entries if e.entry["kind"] == "release"]


@given(ledgers)
def test_every_stage_adds_up_to_the_releases(entries: list[Logged]) -> None:
    found = flow_map(entries, Window())
    released = releases_of(entries)
    by_stage: Counter[int] = Counter()
    people_by_stage: Counter[int] = Counter()
    for link in found.links:
        by_stage[link.stage] += link.releases
        people_by_stage[link.stage] += link.people
    assert found.releases == by_stage[2] == len(released)
    assert found.people == people_by_stage[2] == sum(e["people"] for e in released)
    assert by_stage[0] == by_stage[1] == sum(len(e["categories"]) for e in released)
    # What enters a category leaves it.
    into: Counter[str] = Counter()
    out: Counter[str] = Counter()
    for link in found.links:
        if link.stage == 0:
            into[link.target] += link.releases
        if link.stage == 1:
            out[link.source] += link.releases
    assert into == out
    refused = [e.entry for e in entries if e.entry["kind"] == "decision" and not e.entry["allowed"]]
    assert found.refused == len(refused)
    assert found.allowed == sum(1 for e in entries if e.entry.get("allowed") is True)


@given(ledgers, st.integers(0, 60), st.integers(0, 60), st.sampled_from(["", "one", "two"]))
def test_a_window_counts_what_a_filter_before_it_would(
    entries: list[Logged], a: int, b: int, agreement: str
) -> None:
    first, last = sorted((a, b))
    since, until = START.date() + timedelta(days=first), START.date() + timedelta(days=last)
    window = Window.parse(since.isoformat(), until.isoformat(), agreement)

    def inside(e: Logged) -> bool:
        day = datetime.fromisoformat(e.entry["at"]).date()
        return since <= day <= until and (not agreement or e.entry["agreement"] == agreement)

    assert flow_map(entries, window) == flow_map([e for e in entries if inside(e)], Window())


@given(ledgers)
def test_the_drawing_fits_its_box(entries: list[Logged]) -> None:
    found = flow_map(entries, Window())
    chart = sankey_svg(found.links)
    assert len(chart["bands"]) == len(found.links)
    for n in chart["nodes"]:
        node = n["node"]
        assert 0 <= node.x <= WIDTH
        assert node.y >= 0
        assert node.y + node.height <= HEIGHT + 1


@pytest.mark.parametrize(
    ("since", "until", "says"),
    [
        ("2026-02-30", "", "'from' date '2026-02-30' is not a date"),  # no 30 February
        ("", "tomorrow", "'to' date 'tomorrow' is not a date"),  # words are not dates
        ("2026-03-02", "2026-03-01", "ends (2026-03-01) before it starts"),  # backwards
    ],
)
def test_a_bad_window_says_what_is_wrong(since: str, until: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says.replace("(", r"\(").replace(")", r"\)")):
        Window.parse(since, until, "")


def test_one_day_is_a_whole_day() -> None:
    window = Window(since=date(2026, 1, 2), until=date(2026, 1, 2))
    assert window.holds(Logged(0, {"at": "2026-01-02T00:00:00Z"}))
    assert window.holds(Logged(0, {"at": "2026-01-02T23:59:59.999999Z"}))
    assert not window.holds(Logged(0, {"at": "2026-01-03T00:00:00Z"}))
    assert not window.holds(Logged(0, {"at": "2026-01-01T23:59:59Z"}))


def _note(index: int, rule: str) -> dict[str, Any]:
    """The entry the gateway logs after a release that never reached its recipient (or, under
    another rule, a look-alike that says nothing of the release)."""
    what = (
        "failed in chirp's database: disk full"
        if rule == "gateway:release-failed"
        else "was never received: the store failed while committing it"
    )
    return {
        "kind": "decision",
        "allowed": False,
        "reason": f"Refused: the release logged at index {index} {what}; nothing was released.",
        "rules": [rule],
        "agreement": "one",
        "people": 3,
        "at": (START + timedelta(days=61)).isoformat(),
    }


@given(ledgers, st.data())
def test_a_release_never_received_is_left_out_of_the_flows(
    entries: list[Logged], data: st.DataObject
) -> None:
    released = [x.index for x in entries if x.entry["kind"] == "release"]
    never = data.draw(st.sets(st.sampled_from(released))) if released else set()
    rules = st.sampled_from(["gateway:release-undelivered", "gateway:release-failed"])
    notes = [_note(i, data.draw(rules)) for i in sorted(never)]
    # A failure logged under another rule, in the same words, undoes nothing.
    decoys = [_note(i, "gateway:error") for i in released if i not in never]
    logged = entries + [Logged(len(entries) + k, e) for k, e in enumerate(notes + decoys)]
    found = flow_map(logged, Window())
    kept = [x.entry for x in entries if x.entry["kind"] == "release" and x.index not in never]
    assert found.releases == len(kept)
    assert found.people == sum(e["people"] for e in kept)
    assert found.never_received == len(never)
    # The flows are those of the same ledger without the releases never received.
    without = flow_map([x for x in entries if x.index not in never], Window())
    assert found.links == without.links
    assert found.parties == without.parties
