"""The store's repositories, one per kind of record, each taking a Session.

Repositories read and write; they never commit. Foreign database errors come out as
:class:`accord.errors.StoreError`, missing records as :class:`accord.errors.NotFound`.
"""

from __future__ import annotations

from accord.store.consents import ConsentRepository, OptOutRepository
from accord.store.people import Party, PartyRepository, PeopleRepository
from accord.store.registry import AgreementRepository

__all__ = [
    "AgreementRepository",
    "ConsentRepository",
    "OptOutRepository",
    "Party",
    "PartyRepository",
    "PeopleRepository",
]
