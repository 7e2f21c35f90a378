"""Erasure over the partner API: the party holding a person erases them, and each recipient reads
and acknowledges its notices (GDPR Art. 17 and 19).

``POST /v1/people/{person}/erasure`` runs :func:`accord.erasure.erase` for the calling app's
party. It takes the app's own token (client credentials), not a person's: erasure is the
controller's act (Art. 17(1)), and the controller authenticates as itself, as it does at the door.
A person's token is the partner app acting for one person under a grant of data access, which
gives no power over the holder's records; and no app can erase anyone at a party other than its
own, so a recipient cannot stop the holder's data about a person by erasing them.

``GET /v1/erasure-notices`` lists what the calling app's party must act on: each person erased by
a party that had released their data to it, named by the id it knows them by, with the deadline
to acknowledge (GDPR Art. 12(3): a month by default, ``ACCORD_API_ERASURE_DEADLINE_DAYS``), how
many times it was told and why it was told again.
``POST /v1/erasure-notices/{id}/acknowledgement`` (or ``DELETE /v1/erasure-notices/{id}``)
acknowledges one: the person's id is cleared from it, the ledger records the acknowledgement, and
the person's page shows it; acknowledging twice is harmless. Both take the app's own token, for
the same reason: the notice is to the party, not to any person.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from accord import erasure
from accord.api.access import NO_DELEGATION, Caller, refusal
from accord.api.errors import NothingToErase
from accord.api.problems import PROBLEM_RESPONSES
from accord.api.routes import CallerDep, Services, ServicesDep
from accord.errors import InvalidInput

router = APIRouter(prefix="/v1", responses=PROBLEM_RESPONSES, tags=["erasure"])

PersonId = Annotated[str, Path(min_length=1, max_length=255)]
NOT_HELD = "api:not-held"
"""The rule of an erasure refused because the caller's party does not hold the person."""


class ErasureIn(BaseModel):
    """How recipients know the person, where not by the holding party's own id."""

    model_config = ConfigDict(extra="forbid")

    known_as: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        Annotated[str, Field(min_length=1, max_length=255)],
    ] = Field(
        default={},
        max_length=50,
        description="Recipient party → the person's id there (an account the person linked).",
    )


class ErasureOut(BaseModel):
    """What the erasure did."""

    party: str
    withdrawn: int = Field(description="Consents withdrawn.")
    recipients: list[str] = Field(description="Parties told (each has a notice).")
    deleted: dict[str, int] = Field(description="Rows of the store deleted, by table.")
    sealed: bool = Field(description="Whether a proof of past consent is kept under their key.")
    entries_forgotten: int = Field(description="Ledger entries no longer tied to the person.")
    receipt: int | None = Field(description="Ledger index of the erasure entry.")
    already: bool = Field(description="The person had been erased before.")
    request: str | None = Field(
        default=None,
        description="The erasure request's id: give it to the person, whose page at "
        "/me/erasure/{request} follows each recipient's acknowledgement.",
    )


class NoticeOut(BaseModel):
    """A person whose data the caller's party received was erased by its provider."""

    id: str
    provider: str
    person: str = Field(description="The person's id as the recipient knows them.")
    erased_at: datetime
    due_at: datetime | None = Field(
        default=None, description="By when to acknowledge; past it, the notice is overdue."
    )
    attempts: int = Field(default=1, description="How many times the party was told.")
    problem: str | None = Field(default=None, description="Why it was told again, if it was.")


class AcknowledgedOut(BaseModel):
    """The notice acted on: the person's id is cleared from it."""

    acknowledged: str


def _party_itself(who: Caller, svc: Services) -> str:
    """The calling app's party, for a token of the app acting for itself (else refused, logged)."""
    if who.person is not None:
        raise refusal(
            svc.gateway.accord,
            "erasure and its notices are for a party acting as itself: use the app's own token "
            "(client credentials), not a person's",
            NO_DELEGATION,
            party=who.app.party,
            client=who.app.client_id,
            outcome="no one was erased and no notice was read",
        )
    return who.app.party


def _not_held(svc: Services, who: Caller, exc: InvalidInput) -> NothingToErase:
    """The erasure refused, logged first like every refusal: about no one, and without the id
    asked for (it names someone the party does not hold, perhaps someone another party holds).
    The answer says only what the caller's own party holds, the same whether or not anyone
    else knows the id."""
    party = who.app.party
    logged = refusal(
        svc.gateway.accord,
        f"party {party} holds no such person to erase",
        NOT_HELD,
        party=party,
        client=who.app.client_id,
        outcome="no one was erased and no one was told",
        action="write",
    )
    return NothingToErase(exc.message, rule=NOT_HELD, receipt=logged.receipt)


@router.post(
    "/people/{person}/erasure",
    response_model=ErasureOut,
    summary="Erase a person the calling app's party holds (GDPR Art. 17)",
)
def erase_person(
    person: PersonId, who: CallerDep, svc: ServicesDep, body: ErasureIn | None = None
) -> ErasureOut:
    """Withdraw their consents, stop every flow about them, delete their records (keeping the
    proof of past consent sealed under their key), tell each recipient, destroy their key."""
    party = _party_itself(who, svc)
    try:
        done = erasure.erase(
            svc.gateway.accord,
            party,
            person,
            known_as=body.known_as if body else None,
            deadline=svc.erasure_deadline,
        )
    except InvalidInput as exc:
        raise _not_held(svc, who, exc) from None
    return ErasureOut(
        party=done.party,
        withdrawn=done.withdrawn,
        recipients=list(done.recipients),
        deleted=done.deleted,
        sealed=done.sealed,
        entries_forgotten=done.entries_forgotten,
        receipt=done.receipt,
        already=done.already,
        request=done.request,
    )


@router.get(
    "/erasure-notices",
    response_model=list[NoticeOut],
    summary="People erased by a provider whose data the calling app's party received (Art. 19)",
)
def erasure_notices(who: CallerDep, svc: ServicesDep) -> list[NoticeOut]:
    """The notices waiting for the caller's party, oldest first."""
    party = _party_itself(who, svc)
    return [
        NoticeOut(
            id=n.id,
            provider=n.provider,
            person=n.person,
            erased_at=n.erased_at,
            due_at=n.due_at,
            attempts=n.attempts,
            problem=n.problem,
        )
        for n in erasure.notices(svc.gateway.accord, party)
    ]


NoticeId = Annotated[str, Path(min_length=1, max_length=64)]


@router.post(
    "/erasure-notices/{notice}/acknowledgement",
    response_model=AcknowledgedOut,
    summary="Acknowledge an erasure notice: the party has erased the person on its side",
)
def acknowledge_notice(notice: NoticeId, who: CallerDep, svc: ServicesDep) -> AcknowledgedOut:
    """The caller's party has erased the person on its side: the notice stops naming them, the
    ledger records the acknowledgement, and the person's page shows it."""
    party = _party_itself(who, svc)
    erasure.acknowledge(svc.gateway.accord, party, notice)
    return AcknowledgedOut(acknowledged=notice)


@router.delete(
    "/erasure-notices/{notice}",
    response_model=AcknowledgedOut,
    summary="Acknowledge an erasure notice (the same as POST .../acknowledgement)",
)
def acknowledge_notice_by_delete(
    notice: NoticeId, who: CallerDep, svc: ServicesDep
) -> AcknowledgedOut:
    """The caller's party has erased the person on its side; the notice stops naming them."""
    party = _party_itself(who, svc)
    erasure.acknowledge(svc.gateway.accord, party, notice)
    return AcknowledgedOut(acknowledged=notice)
