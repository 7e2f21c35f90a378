"""The partner API's own errors, under Accord's one root (see :mod:`accord.errors`)::

    AccordError
    ├── InvalidToken     no bearer token, or one that is unknown, expired or revoked (401)
    ├── Forbidden        a valid token that does not reach this request; names the rule (403)
    ├── InvalidInput
    │   └── NothingToErase  an erasure of a person the caller's party does not hold (422), logged
    ├── RateLimited      the app sent more requests than its limit allows (429)
    ├── RateLimitStoreUnreachable   the shared rate-limit store did not answer (503)
    ├── ExchangeTimedOut  an exchange ran past its time (a store stalled) and was abandoned (503)
    └── (accord.errors.RequestTimedOut)  any other request ran past that time, abandoned (503)

Each maps to an HTTP status in one place, :mod:`accord.api.problems`.
"""

from __future__ import annotations

from accord.errors import AccordError, InvalidInput


class InvalidToken(AccordError):
    """No usable bearer token: missing, malformed, unknown, expired or revoked (RFC 6750 3.1)."""


class Forbidden(AccordError):
    """A valid token that does not reach the request; ``rule`` names what refused it."""

    def __init__(self, message: str, *, rule: str, where: str | None = None) -> None:
        self.rule = rule
        self.receipt: int | None = None
        """The ledger index of the refusal, once logged."""
        super().__init__(message, where=where)


class NothingToErase(InvalidInput):
    """An erasure of a person the calling party does not hold: unprocessable (422), and logged
    as a refusal; ``rule`` names it, ``receipt`` is its ledger index."""

    def __init__(self, message: str, *, rule: str, receipt: int | None) -> None:
        self.rule = rule
        self.receipt = receipt
        super().__init__(message, where="erasure")


class RateLimited(AccordError):
    """More requests than the app's limit; ``retry_after`` is in seconds."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class RateLimitStoreUnreachable(AccordError):
    """The store that counts every worker's hits did not answer: the request is refused, not
    served unlimited; ``store`` is its URL without credentials."""

    def __init__(self, store: str) -> None:
        self.store = store
        super().__init__(f"the rate-limit store at {store} cannot be reached; nothing was released")


class ExchangeTimedOut(AccordError):
    """An exchange did not finish within its time (a store that stalls): it is answered 503 and
    abandoned; the door logs its failure, never its release, once it gets that far."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        super().__init__(
            f"the exchange did not finish within {seconds:g} s and was abandoned; "
            "nothing was released"
        )
