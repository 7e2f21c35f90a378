"""``accord audit``: an auditor's replay of the ledger against the law, the agreements and the
parties' own databases.

* :mod:`accord.audit.law`: the auditor's own plain reading of the statutes and the agreement,
  person by person (pure; shares no rule with the gateway's Cedar policies or filter SQL);
* :mod:`accord.audit.records`: the ledger's leaves and whom they are about, the store's records,
  the parties' tables, each read plainly;
* :mod:`accord.audit.replay`: every release judged again, and the differences;
* :mod:`accord.audit.cli`: the command.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from accord.audit.replay import AuditReport, Difference, audit

__all__ = ["AuditReport", "Difference", "audit"]


def __getattr__(name: str) -> Any:
    # Imported when first used (PEP 562): ``accord audit --help`` loads no store nor ledger.
    if name in __all__:
        return getattr(import_module("accord.audit.replay"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
