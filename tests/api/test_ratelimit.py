"""The per-partner moving window: at most N hits in any window of W seconds, per key."""

from __future__ import annotations

import threading

import pytest
from limits import parse

from accord.api.ratelimit import MovingWindow

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("hits", "at", "expected"),
    [
        ([], 0.0, None),  # nothing counted yet
        ([0.0, 1.0], 2.0, None),  # under the limit of three
        ([0.0, 1.0, 2.0], 3.0, 57.0),  # the fourth within a minute waits for the first to leave
        ([0.0, 1.0, 2.0], 60.0, 0.0),  # the first is still in the window at exactly 60 s
        ([0.0, 1.0, 2.0], 60.5, None),  # and has left it just after
        ([0.0, 30.0, 59.0, 60.5], 61.0, 29.0),  # the window moved: the oldest hit in it decides
    ],
)
def test_a_hit_is_allowed_while_fewer_than_the_limit_are_in_the_window(
    hits: list[float], at: float, expected: float | None
) -> None:
    window = MovingWindow(parse("3/minute"))
    for moment in hits:
        assert window.hit("chirp", at=moment) is None
    assert window.hit("chirp", at=at) == expected


def test_a_refused_hit_is_not_counted_and_keys_are_apart() -> None:
    window = MovingWindow(parse("1/second"))
    assert window.hit("chirp", at=0.0) is None
    assert window.hit("chirp", at=0.5) == 0.5
    assert window.hit("reelix", at=0.5) is None  # another partner, another count
    assert window.hit("chirp", at=1.2) is None  # the refusal at 0.5 did not extend the wait


def test_concurrent_hits_never_pass_the_limit() -> None:
    window = MovingWindow(parse("100/minute"))
    allowed: list[bool] = []

    def hammer() -> None:
        for _ in range(50):
            allowed.append(window.hit("chirp", at=1.0) is None)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert allowed.count(True) == 100
