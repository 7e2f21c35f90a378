"""The limit on refused tokens per client address: how addresses are counted, what it refuses
before authentication, and how the refusals past it reach the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest
from limits import parse

from accord.api.errors import RateLimited
from accord.api.ratelimit import MovingWindow
from accord.api.refusals import TOO_MANY_REFUSED, RefusalLimit, RefusalLogger, address_key
from accord.service import Accord

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),  # IPv4: the address itself
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),  # IPv6: its /64 (RFC 6177)
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # another address of the same site
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),  # the next /64 counts apart
        ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped: as the IPv4 address
        ("testclient", "testclient"),  # not an address: as it is
        (None, "unknown"),  # no peer at all (a Unix socket)
    ],
)
def test_an_address_is_counted_by_the_block_a_site_holds(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_a_full_window_is_known_without_counting_a_hit() -> None:
    window = MovingWindow(parse("2/minute"))
    assert window.refusing("a", at=0.0) is None  # never seen
    assert window.hit("a", at=0.0) is None
    assert window.refusing("a", at=1.0) is None  # room for one more
    assert window.hit("a", at=1.0) is None
    assert window.refusing("a", at=2.0) == 58.0  # full until the first hit leaves
    assert window.refusing("a", at=2.0) == 58.0  # asking counted nothing
    assert window.refusing("b", at=2.0) is None  # another address, another count
    assert window.refusing("a", at=60.5) is None  # the first hit left the window


def test_refusals_past_the_limit_are_counted_and_logged_once(tmp_path: Path) -> None:
    with Accord.open(data_dir=tmp_path) as accord:
        refusals = RefusalLimit(accord.ledger, MovingWindow(parse("2/minute")))
        start = accord.ledger.head().size
        assert refusals.refused("a") is None
        assert refusals.refused("a") is None
        refusals.before("a2")  # another address is not refused
        over = refusals.refused("a")
        assert isinstance(over, RateLimited)
        assert 1 <= over.retry_after <= 60
        with pytest.raises(RateLimited):
            refusals.before("a")
        refusals.refused("b")
        assert refusals.pending() == 2
        with RefusalLogger(refusals, 3600):
            pass  # logs what was counted when it stops
        assert refusals.pending() == 0
        assert refusals.flush() is None  # nothing new: no entry
        (entry,) = [accord.ledger.leaf(i).entry() for i in range(start, accord.ledger.head().size)]
        assert entry["rules"] == [TOO_MANY_REFUSED]
        assert entry["allowed"] is False
        assert "2 requests from 1 address " in entry["reason"]
