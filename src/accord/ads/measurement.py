"""Conversion lift of a partner's campaign: a randomised holdout, and the lift measured in the
clean room with the partner's conversions matched under their consent.

* :func:`holdout_audience` makes a study's holdout (:func:`accord.pets.lift.assign`) an audience
  of the platform's own, which the campaign excludes: the holdout never sees its ads.
* :func:`partner_lift` matches the partner's members, and those who converted (sign-ups and
  plays), into the platform's people by the consent-aware matching audiences use
  (:func:`accord.ads.audiences.match_partner_people`), and measures the lift on the people whose
  conversions could be seen at all.
* :func:`conversion_lift` measures it from conversions already in the room: every person in the
  study pays the privacy budget first, and only four noisy counts leave, as an aggregate release
  to the advertiser (:func:`accord.pets.lift.measure`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from accord.ads.audiences import PartnerMatch, Records, match_partner_people
from accord.ads.model import Audience
from accord.errors import InvalidInput
from accord.ledger.entries import ReleaseEntry
from accord.ledger.log import Receipt
from accord.pets import lift
from accord.pets.budget import Charge, Cost, PrivacyBudgets
from accord.pets.lift import Lift
from accord.pets.lift_counts import count_on

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from accord.ads.store import AdsStore
    from accord.pets import dp
    from accord.service import Accord


def holdout_audience(
    store: AdsStore,
    audience: Audience,
    eligible: Iterable[str],
    study: str,
    holdout: float | None = None,
) -> frozenset[str]:
    """Make ``audience`` (the platform's own, no provider) the holdout of lift ``study`` among
    ``eligible`` people; a campaign that excludes it never shows them its ads. Returns them."""
    if audience.provider is not None:
        raise InvalidInput(
            "a holdout is the platform's own list, not a partner's", where=f"audience {audience.id}"
        )
    share = lift.HOLDOUT if holdout is None else holdout
    held = frozenset(
        p for p, g in lift.groups_of(eligible, study, share).items() if g is lift.Group.HOLDOUT
    )
    store.replace_audience_members(audience, [(p, None) for p in sorted(held)])
    return held


@dataclass(frozen=True, slots=True)
class LiftStudy:
    """A lift study of an advertiser's campaign: its name (the holdout's hash key), who is
    told, and under which agreement and clause the aggregate is released."""

    study: str
    platform: str
    advertiser_party: str
    agreement: str
    clause: str
    purpose: str = "analytics.reporting.campaign_insights"
    categories: tuple[str, ...] = ("user.behavior",)
    holdout: float = 0.1


def conversion_lift(
    accord: Accord,
    study: LiftStudy,
    eligible: Iterable[str],
    converted: Collection[str],
    privacy: dp.Privacy,
    *,
    budgets: PrivacyBudgets | None = None,
    confidence: float = 0.95,
    at: datetime | None = None,
    spark: SparkSession | None = None,
) -> tuple[Lift, Receipt]:
    """The conversion lift of ``study`` in the clean room: ``eligible`` platform people, split
    into exposed and holdout by :func:`accord.pets.lift.assign`, and ``converted`` the people
    (matched into the platform) the advertiser's sign-ups and plays came from. Only the noisy
    aggregates leave, logged as an aggregate release to the advertiser first.

    With ``budgets``, every person in the study pays ``privacy``'s epsilon from their privacy
    budget first (durably, in the ledger); a study that would overspend anyone is refused whole
    (:class:`~accord.pets.budget.BudgetExceeded`), as is one with a group under 50 people.

    The groups are counted in this process, or with ``spark`` by Apache Spark
    (:func:`accord.pets.lift_counts.count_on`: the same counts); the noise is added here.
    """
    groups = lift.groups_of(eligible, study.study, study.holdout)
    if spark is None:
        counts = lift.count(groups, converted)
    else:
        counts = count_on(groups, converted, spark=spark)
    lift.check_groups(counts)
    if budgets is not None:
        budgets.spend(
            Charge(
                party=study.platform,
                people=sorted(groups),
                cost=Cost(privacy.epsilon, privacy.delta, privacy.mechanism.value),
                recipient=study.advertiser_party,
                description=f"conversion lift of study {study.study}",
                agreement=study.agreement,
                clause=study.clause,
                purpose=study.purpose,
                categories=study.categories,
            )
        )
    result = lift.measure(counts, privacy, confidence=confidence)
    people = sum(c.people for c in counts.values())
    entry = ReleaseEntry(
        agreement=study.agreement,
        clause=study.clause,
        purpose=study.purpose,
        categories=study.categories,
        reason=(
            f"{study.platform} → {study.advertiser_party}: conversion lift of study "
            f"{study.study}, four counts (people and converters of the exposed group and the "
            f"holdout) with OpenDP noise (epsilon {privacy.epsilon:g}), each group at least "
            f"{lift.MIN_PEOPLE} people"
        ),
        people=people,
        provider=study.platform,
        recipient=study.advertiser_party,
        fields=("lift.people", "lift.converted"),
        granularity="aggregate",
        operation="read",
        rows=len(lift.Group),
        at=at or datetime.now(UTC),
    )
    receipt = accord.ledger.append([entry])[0]
    return result, receipt


def partner_lift(
    accord: Accord,
    study: LiftStudy,
    how: PartnerMatch,
    privacy: dp.Privacy,
    *,
    eligible: Iterable[str],
    platform_records: Records,
    member_records: Records,
    conversion_records: Records,
    budgets: PrivacyBudgets | None = None,
    partner_accord: Accord | None = None,
    confidence: float = 0.95,
    at: datetime | None = None,
    spark: SparkSession | None = None,
) -> tuple[Lift, Receipt]:
    """The conversion lift of ``study`` with the partner's conversions matched in the room.

    The partner's members (``member_records``) and those of them who converted
    (``conversion_records``: sign-ups and plays in the study's window) are matched into the
    platform's people by consent-aware private set intersection under ``how``: only members who
    may take part come in, each match a decision and a release in the ledger. The study is the
    ``eligible`` platform people whose conversions could be seen at all (matched with a member
    who may take part), so that consent, which does not depend on the group, thins both groups
    alike and does not dilute the lift. The matches stay in this call (the clean room); only the
    noisy aggregates of :func:`conversion_lift` leave (its groups counted by Spark when
    ``spark`` is given).
    """
    when = at or datetime.now(UTC)
    platform_list = list(platform_records)
    seen = match_partner_people(
        accord, how, platform_list, member_records, partner_accord=partner_accord, at=when
    ).people
    converted = match_partner_people(
        accord, how, platform_list, conversion_records, partner_accord=partner_accord, at=when
    ).people
    return conversion_lift(
        accord,
        study,
        [p for p in eligible if p in seen],
        converted & seen,
        privacy,
        budgets=budgets,
        confidence=confidence,
        at=when,
        spark=spark,
    )


__all__ = ["LiftStudy", "conversion_lift", "holdout_audience", "partner_lift"]
