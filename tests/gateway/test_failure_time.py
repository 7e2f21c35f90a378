"""A refusal logged for an error on the way carries the request's time, not the wall clock's.

The ledger says when each decision was taken about a request; a failure is a refusal of that
request, so an auditor replaying the period the request falls in must find it there.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from accord.gateway import ERROR_RULE, Exchange, Gateway, GatewayError
from accord.service import Accord
from gateway.helpers import last_entries
from gateway.world import AT, World, request

pytestmark = pytest.mark.integration


class FailingPolicy(Accord):
    """A store whose policy fails with a foreign exception, whatever the request."""

    def policy(self) -> Any:
        raise ZeroDivisionError("the policy engine fell over")


def test_a_failure_is_logged_at_the_requests_time(w: World) -> None:
    when = AT - timedelta(days=3, hours=5)
    assert abs(datetime.now(UTC) - when) > timedelta(days=1)  # far from the wall clock
    broken = FailingPolicy(w.accord.engine, w.accord.sessions, w.accord.ledger)
    gateway = Gateway(broken, w.sources, w.keyring)
    r = request("friend-picker", categories=frozenset({"user.social"}), at=when)
    with pytest.raises(GatewayError, match="ZeroDivisionError"):
        gateway.exchange(Exchange(r, w.tokens["reelix"], "friendships"))
    (logged,) = last_entries(w.accord.ledger, 1)
    assert logged["rules"] == [ERROR_RULE]
    assert logged["allowed"] is False
    assert datetime.fromisoformat(logged["at"].replace("Z", "+00:00")) == when
