"""Column types that behave the same on SQLite and PostgreSQL.

Instants are stored as UTC and come back as aware UTC datetimes, equal to what went in:

* PostgreSQL: ``timestamp with time zone`` (microsecond precision, compared as instants);
* SQLite, which has no date type: fixed-width text ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC. Every
  value has the same width and the same offset, so comparing the text compares the instants, and
  ``<``, ``<=`` and ``BETWEEN`` in SQL mean what they say. Literals compared with such a column
  are bound through the same type, so they take the same form.

Naive datetimes are taken to be UTC, as :func:`accord.consent.utc` does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from accord.consent import utc

_SQLITE_WIDTH = len("2024-01-01T00:00:00.000000Z")


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: ``timestamptz`` on PostgreSQL, fixed-width UTC text on SQLite."""

    impl = String(_SQLITE_WIDTH)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """The column type each backend stores."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(DateTime(timezone=True))
        return dialect.type_descriptor(String(_SQLITE_WIDTH))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """UTC, and on SQLite its fixed-width text."""
        if value is None:
            return None
        moment = utc(value)
        if dialect.name == "postgresql":
            return moment
        return to_text(moment)

    def process_result_value(
        self,
        value: Any,
        dialect: Dialect,  # noqa: ARG002  (TypeDecorator's signature)
    ) -> datetime | None:
        """An aware UTC datetime."""
        if value is None:
            return None
        if isinstance(value, datetime):
            return utc(value)
        return from_text(str(value))


def to_text(moment: datetime) -> str:
    """The SQLite form of an instant: ``2024-06-15T12:00:00.000000Z``."""
    # isoformat always writes four year digits and, with timespec, six fraction digits.
    return utc(moment).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_text(text: str) -> datetime:
    """The instant written by :func:`to_text`."""
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)
