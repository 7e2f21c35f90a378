"""The auditor's and regulator's console: public pages, no sign-in, naming no person.

* ``/audit``: the registry of every agreement, drafts and unpublished ones included (there is no
  secret agreement): its clauses, its privacy review, and its lifecycle as the ledger's
  ``agreement`` entries recorded it, with their dates and leaf indexes.
* ``/audit/flows``: the flow map, releases counted by party, data category and purpose from the
  ledger's ``release`` entries (how many releases, how many people, never who), filtered by date
  range and agreement; and the refusals from its ``decision`` entries, by reason and rule.
* ``/audit/money``: each advertiser's ad spend beside the data access its party held through
  agreements in the same year (or month): the filings' question, what a partner paid the platform
  while it read the platform's data, answered from the spend records, the registry and the ledger
  (:func:`accord.ads.access.spend_beside_access`), with the ledger's own ``ad_spend`` entries
  summed beside the records.
* ``/audit/ledger``: the ledger's size and root, its signed checkpoints newest first, the verifier
  key, and a consistency check between two sizes that the page itself checks with WebCrypto
  (``/static/ledger-proofs.js``, RFC 9162 section 2.1.4.2).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from markupsafe import Markup, escape
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from accord import agreements as ag
from accord.ads.access import PERIODS, Period, SpendBesideAccess, spend_beside_access
from accord.ads.model import show_money
from accord.ads.tables import advertisers
from accord.api.audit_view import (
    Window,
    flow_map,
    ledger_entries,
    lifecycles,
    sankey_svg,
)
from accord.api.pages import error_page, templates
from accord.errors import InvalidInput
from accord.service import Accord

PER_PAGE = 20
"""Checkpoints listed on one page of ``/audit/ledger``."""


def breakable(text: object) -> Markup:
    """``text`` escaped, with a line break allowed after each dot (a long taxonomy key or
    ``collection.field`` may wrap in a narrow table cell)."""
    return Markup(".<wbr>").join(escape(part) for part in str(text).split("."))


templates.env.filters["breakable"] = breakable
templates.env.globals["show_money"] = show_money

STAGE_NAMES = ("holder to data category", "data category to purpose", "purpose to recipient")


def console(accord: Accord) -> APIRouter:
    """The console's pages over ``accord``'s registry and ledger."""
    router = APIRouter(include_in_schema=False)

    @router.get("/audit")
    async def registry(request: Request) -> Response:
        return await run_in_threadpool(_registry, request, accord)

    @router.get("/audit/flows")
    async def flows(
        request: Request, since: str = "", until: str = "", agreement: str = ""
    ) -> Response:
        return await run_in_threadpool(_flows, request, accord, since, until, agreement)

    @router.get("/audit/money")
    async def money(request: Request, by: str = "year") -> Response:
        return await run_in_threadpool(_money, request, accord, by)

    @router.get("/audit/ledger")
    async def ledger(request: Request, page: str = "1", old: str = "", new: str = "") -> Response:
        return await run_in_threadpool(_ledger, request, accord, page, old, new)

    return router


def _registry(request: Request, accord: Accord) -> Response:
    registered = sorted(accord.agreements(), key=lambda r: r.agreement.id)
    history = lifecycles(ledger_entries(accord.ledger, ["agreement"]))
    return templates.TemplateResponse(
        request,
        "audit/registry.html",
        {
            "current": "registry",
            "agreements": [(r, history.get(r.agreement.id, [])) for r in registered],
            "published": sum(r.published for r in registered),
            "drafts": sum(r.status is ag.Status.DRAFT for r in registered),
        },
    )


def _flows(request: Request, accord: Accord, since: str, until: str, agreement: str) -> Response:
    ids = sorted(r.agreement.id for r in accord.agreements())
    try:
        window = Window.parse(since, until, agreement)
    except InvalidInput as exc:
        return error_page(
            request,
            400,
            "That filter cannot be read",
            str(exc),
            links=[("The flow map", "/audit/flows")],
        )
    entries = ledger_entries(accord.ledger, ["release", "decision"])
    found = flow_map(entries, window)
    return templates.TemplateResponse(
        request,
        "audit/flows.html",
        {
            "current": "flows",
            "window": window,
            "form": {"since": since.strip(), "until": until.strip(), "agreement": agreement},
            "agreement_ids": sorted(set(ids) | ({window.agreement} if window.agreement else set())),
            "map": found,
            "chart": sankey_svg(found.links) if found.links else None,
            "stages": STAGE_NAMES,
        },
    )


def _money(request: Request, accord: Accord, by: str) -> Response:
    if by not in PERIODS:
        return error_page(
            request,
            400,
            "That cannot be read",
            f"by is {' or '.join(PERIODS)}, not {by!r}.",
            links=[("Ad spend beside data access", "/audit/money")],
        )
    with accord.engine.connect() as c:
        platforms = sorted(c.execute(select(advertisers.c.platform).distinct()).scalars().all())
    period: Period = "year" if by == "year" else "month"
    tables = [spend_beside_access(accord.engine, p, by=period) for p in platforms]
    return templates.TemplateResponse(
        request,
        "audit/money.html",
        {
            "current": "money",
            "by": by,
            "tables": [(table, money_chart(table)) for table in tables],
        },
    )


def money_chart(table: SpendBesideAccess) -> dict[str, Any] | None:
    """Bars of each period's spend beside the records its party's agreements released, for the
    advertisers that are parties to an agreement (the others hold no data access to compare):
    two scales, one for money and one for records, each bar a share of its scale's largest."""
    rows = [(r, r.access) for r in table.rows if r.access is not None]
    if not rows:
        return None
    top_spend = max(r.spend for r, _ in rows) or 1
    top_records = max(access.records for _, access in rows) or 1
    bar, gap, label, width = 14, 12, 190, 300
    bars = []
    for n, (r, access) in enumerate(rows):
        y = 30 + n * (2 * bar + gap)
        bars.append(
            {
                "label": f"{r.name}, {r.period}",
                "y": y,
                "spend": r.spend,
                "spend_w": round(width * r.spend / top_spend, 1),
                "records": access.records,
                "records_w": round(width * access.records / top_records, 1),
            }
        )
    return {
        "bars": bars,
        "bar": bar,
        "label": label,
        "width": label + width + 120,
        "height": 30 + len(rows) * (2 * bar + gap),
    }


def _ledger(request: Request, accord: Accord, page: str, old: str, new: str) -> Response:
    ledger = accord.ledger
    try:
        number = int(page or "1")
        sizes = [int(v) if v.strip() else None for v in (old, new)]
    except ValueError:
        return error_page(
            request,
            400,
            "That cannot be read",
            "page, old and new are whole numbers (a page from 1, tree sizes from 0).",
            links=[("The ledger", "/audit/ledger")],
        )
    if number < 1 or any(s is not None and s < 0 for s in sizes):
        return error_page(
            request,
            400,
            "That cannot be read",
            "page counts from 1 and tree sizes from 0.",
            links=[("The ledger", "/audit/ledger")],
        )
    head = ledger.head()
    count = ledger.checkpoint_count()
    pages = max(1, -(-count // PER_PAGE))
    listed = ledger.recent_checkpoints(PER_PAGE, (number - 1) * PER_PAGE)
    newest = ledger.recent_checkpoints(2)
    default_new = newest[0][0] if newest else head.size
    default_old = newest[1][0] if len(newest) > 1 else 0
    check: dict[str, Any] | None = None
    if sizes[0] is not None:
        check = {"old": sizes[0], "new": sizes[1] if sizes[1] is not None else default_new}
    verifier = ledger.verifier
    return templates.TemplateResponse(
        request,
        "audit/ledger.html",
        {
            "current": "ledger",
            "size": head.size,
            "root": head.root.hex(),
            "count": count,
            "checkpoints": listed,
            "page": number,
            "pages": pages,
            "vkey": verifier.vkey if verifier is not None else None,
            "old": check["old"] if check else default_old,
            "new": check["new"] if check else default_new,
            "check": check,
        },
    )
