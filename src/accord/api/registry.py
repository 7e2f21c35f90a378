"""The public registry over HTTP: every published agreement, its clauses, the permissions each
party may ask for under it, and every app registered under it with the permissions its review
approved. No key is needed: there are no confidential agreements and no secret whitelists."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from accord import agreements as ag
from accord.api.problems import PROBLEM_RESPONSES
from accord.api.routes import ServicesDep
from accord.api.scopes import offered, requester_of


class ClauseOut(BaseModel):
    """One clause: what may flow, which way, for what, and the permission it grants."""

    id: str
    description: str
    direction: str
    operations: list[str]
    categories: list[str]
    purposes: list[str]
    granularity: str
    retention_days: int
    legal_basis: str
    scopes: dict[str, list[str]]
    """The scopes the clause grants, by the party that asks under it."""


class ReviewOut(BaseModel):
    """The agreement's recorded privacy review."""

    reviewer: str
    reviewed_on: date
    findings: str
    approved: bool


class AppOut(BaseModel):
    """A partner app under the agreement and what review let it use for the public."""

    client_id: str
    name: str
    party: str
    approved: list[str]
    revoked_at: datetime | None


class AgreementOut(BaseModel):
    """A published agreement."""

    id: str
    title: str
    version: int
    provider: str
    recipient: str
    status: str
    valid_from: date
    valid_until: date
    review: ReviewOut | None
    clauses: list[ClauseOut]
    apps: list[AppOut]


router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, tags=["registry"])


def _clause(a: ag.Agreement, c: ag.Clause) -> dict[str, Any]:
    scopes: dict[str, list[str]] = {}
    for party in (a.provider, a.recipient):
        mine = sorted(
            str(s)
            for s, clauses in offered(a, party).items()
            if c in clauses and requester_of(a, c, s.operation) == party
        )
        if mine:
            scopes[party] = mine
    return {
        "id": c.id,
        "description": c.description,
        "direction": c.direction.value,
        "operations": sorted(o.value for o in c.operations),
        "categories": sorted(c.categories),
        "purposes": sorted(c.purposes),
        "granularity": c.granularity.value,
        "retention_days": c.retention_days,
        "legal_basis": c.legal_basis.value,
        "scopes": scopes,
    }


@router.get(
    "/agreements",
    response_model=list[AgreementOut],
    summary="Every published agreement, its permissions and its apps (no token needed)",
)
def agreements(svc: ServicesDep) -> list[dict[str, Any]]:
    """The registry: published agreements only (active, suspended or ended, and reviewed)."""
    out = []
    for reg in svc.apps.accord.agreements():
        if not reg.published:
            continue
        a = reg.agreement
        review = reg.review
        out.append(
            {
                "id": a.id,
                "title": a.title,
                "version": a.version,
                "provider": a.provider,
                "recipient": a.recipient,
                "status": reg.status.value,
                "valid_from": a.valid_from,
                "valid_until": a.valid_until,
                "review": None
                if review is None
                else {
                    "reviewer": review.reviewer,
                    "reviewed_on": review.reviewed_on,
                    "findings": review.findings,
                    "approved": review.approved,
                },
                "clauses": [_clause(a, c) for c in a.clauses],
                "apps": [
                    {
                        "client_id": app.client_id,
                        "name": app.name,
                        "party": app.party,
                        "approved": sorted(str(s) for s in svc.apps.approved(app.client_id)),
                        "revoked_at": app.revoked_at,
                    }
                    for app in svc.apps.under(a.id)
                ],
            }
        )
    return out
