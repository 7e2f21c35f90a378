"""What the one door raises, besides Accord's own errors passing through (see the package tree)."""

from __future__ import annotations

from accord.errors import AccordError
from accord.ledger.log import Receipt
from accord.policy import Decision


class Unauthenticated(AccordError):
    """The credentials do not belong to the requesting party; says nothing of whether it exists."""

    exit_code = 3

    def __init__(self, receipt: Receipt | None) -> None:
        self.receipt = receipt
        super().__init__("the credentials presented are not valid for the requesting party")


class Refused(AccordError):
    """The policy refused the request: nothing was released. The refusal is in the ledger."""

    exit_code = 3

    def __init__(self, decision: Decision, receipt: Receipt) -> None:
        self.decision = decision
        self.receipt = receipt
        super().__init__(decision.reason, where=f"request {decision.request.id}")


class GatewayError(AccordError):
    """The exchange failed on the way (policy, store, source or ledger) and released nothing."""


class ReleaseFailed(GatewayError):
    """A write failed after its release was logged; nothing was written, and that is logged."""


class ReleaseInDoubt(GatewayError):
    """The store failed while committing a release's ledger entries, so they may or may not be
    stored: nothing was delivered, and once the store answers the gateway says in the ledger
    which it was (a release logged but never received is noted as such)."""
