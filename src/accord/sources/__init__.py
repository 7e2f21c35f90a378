"""Dataset declarations and the reads and writes they generate on a party's own database.

* :mod:`accord.sources.datasets` — the YAML declaration of a party's collections and fields, each
  field's data category, and whom each row is about;
* :mod:`accord.sources.allowed` — the people a read may return, carried into the party's database
  as a temporary table;
* :mod:`accord.sources.source` — :class:`Source`: reads of only the named fields of only allowed
  people's rows (streamed), aggregates with small groups suppressed, and all-or-nothing writes.
"""

from __future__ import annotations

from accord.errors import DatasetFormatError
from accord.sources.allowed import Allowed
from accord.sources.datasets import (
    Collection,
    Dataset,
    Field,
    GroupSpec,
    load,
    parse,
)
from accord.sources.source import Aggregate, BoundedAggregate, Rows, Source

__all__ = [
    "Aggregate",
    "Allowed",
    "BoundedAggregate",
    "Collection",
    "Dataset",
    "DatasetFormatError",
    "Field",
    "GroupSpec",
    "Rows",
    "Source",
    "load",
    "parse",
]
