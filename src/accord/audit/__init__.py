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

from accord.audit.replay import AuditReport, Difference, audit

__all__ = ["AuditReport", "Difference", "audit"]
