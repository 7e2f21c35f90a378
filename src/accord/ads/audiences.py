"""Audiences from a partner's data, lookalikes of a partner's seed, and conversion lift.

Every audience here is built from the partner's people that Accord lets through, and nobody else:

* **Custom audience** (:func:`build_partner_audience`): the partner's people of some kind (the
  streaming service's viewers of a title or genre, :func:`viewers`) are matched into the
  platform's people by consent-aware private set intersection (:mod:`accord.pets.psi.consented`).
  On each side only people whose consent covers the clause's purpose (for the other party) and
  who did not opt out of sale and sharing (:mod:`accord.law.optout`) are fed in, so nobody else
  can end up in the audience. An audience smaller than its minimum is refused (and emptied, if it
  was built before). Each build is an ``audience`` entry in the ledger: who built it, under which
  agreement and clause, how many members, and a SHA-256 digest of the member list, never the
  members. Building again (:func:`build_partner_audience` on an audience that exists) replaces
  the members, so people who withdrew their consent or opted out since leave it.
* **Lookalike** (:func:`build_lookalike_audience`): the partner's seed is matched the same way
  inside the clean room, a model trained there on the platform's features scores the platform's
  people (:mod:`accord.pets.lookalike`), and only the best-scored people outside the seed leave.

Conversion lift, measured with the partner's conversions matched the same way, is in
:mod:`accord.ads.measurement`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from accord.ads.model import Audience
from accord.consent import Operation
from accord.errors import InvalidInput, NotFound
from accord.ledger.entries import AudienceChange, AudienceEntry
from accord.ledger.log import Receipt
from accord.pets import lookalike
from accord.pets.lookalike import Floats, Lookalike
from accord.pets.psi import LocalTransport, Server, curve
from accord.pets.psi.choices import Kind
from accord.pets.psi.consented import admit_through_accord, ask_for, match_through_accord
from accord.requests import Request
from accord.taxonomy import THIRD_PARTY_TARGETED_ADS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from accord.ads.store import AdsStore
    from accord.service import Accord

MIN_AUDIENCE = 100
"""The fewest members a partner-data audience may have (as the large platforms require of a
custom audience): a smaller list would come close to naming its people."""

Records = Iterable[tuple[str, str]]
"""(person id at a party, raw identifier such as an e-mail address) pairs."""


class AudienceTooSmall(InvalidInput):
    """An audience would have fewer members than its minimum; it was not built."""


@dataclass(frozen=True, slots=True)
class PartnerMatch:
    """The agreement under which a partner's people are matched into the platform's.

    ``platform_clause`` is the match-only clause under which the platform's people's blinded
    identifiers go out, ``partner_clause`` the one under which the partner's do; each names the
    data categories its side's request is for (the partner's should name what the match reveals,
    e.g. ``user.behavior.media_consumption`` for viewers of a title, so the VPPA applies).
    """

    agreement: str
    platform_clause: str
    partner_clause: str
    platform: str = "chirp"
    partner: str = "reelix"
    purpose: str = THIRD_PARTY_TARGETED_ADS
    platform_categories: frozenset[str] = frozenset({"user.contact.email"})
    partner_categories: frozenset[str] = frozenset({"user.contact.email"})
    kind: Kind = Kind.EMAIL
    """The identifier matched on."""

    def request(self, side: str, at: datetime) -> Request:
        """The match-only request under which ``side``'s people go out to the other side."""
        if side == self.platform:
            requester, clause, categories = (
                self.partner,
                self.platform_clause,
                self.platform_categories,
            )
        elif side == self.partner:
            requester, clause, categories = (
                self.platform,
                self.partner_clause,
                self.partner_categories,
            )
        else:
            raise InvalidInput(f"{side!r} is neither {self.platform} nor {self.partner}")
        return Request(
            requester=requester,
            agreement=self.agreement,
            clause=clause,
            operation=Operation.READ,
            purpose=self.purpose,
            categories=categories,
            at=at,
        )


@dataclass(frozen=True, slots=True)
class Matched:
    """Platform people matched with the partner's, and the platform people allowed to take part
    at all (those fed into the match)."""

    people: frozenset[str]
    allowed: frozenset[str]


def match_partner_people(
    accord: Accord,
    how: PartnerMatch,
    platform_records: Records,
    partner_records: Records,
    *,
    partner_accord: Accord | None = None,
    at: datetime | None = None,
) -> Matched:
    """The platform's people matched with ``partner_records`` by consent-aware private set
    intersection: each side's Accord (the partner's is ``partner_accord``, or the same) feeds in
    only its people allowed under its clause, and logs the release."""
    kind = Kind(how.kind)
    when = at or datetime.now(UTC)
    partner_side = partner_accord or accord
    partner_list = list(partner_records)
    admit = admit_through_accord(partner_side, lambda: partner_list, how.platform, kind=kind)
    with curve.Engine(1) as server_engine, curve.Engine(1) as client_engine:
        matched = match_through_accord(
            accord,
            how.request(how.platform, when),
            platform_records,
            LocalTransport(Server(admit, server_engine)),
            ask=ask_for(how.request(how.partner, when)),
            kind=kind,
            engine=client_engine,
        )
    allowed: frozenset[str] = frozenset().union(*matched.feed.owners.values())
    return Matched(matched.people, allowed)


def viewers(
    watches: Iterable[tuple[str, str, str]], *, title: str | None = None, genre: str | None = None
) -> frozenset[str]:
    """The partner's members who watched ``title`` or a title of ``genre``, from its own watch
    rows (member, title, genre): what the partner selects on its side before matching."""
    if title is None and genre is None:
        raise InvalidInput("an audience of viewers names a title or a genre")
    return frozenset(
        member
        for member, watched, of_genre in watches
        if (title is not None and watched == title) or (genre is not None and of_genre == genre)
    )


def member_digest(members: Iterable[str]) -> str:
    """SHA-256 of the sorted member ids, one a line: what the ledger holds of a member list."""
    text = "".join(f"{m}\n" for m in sorted(set(members)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class AudienceBuild:
    """An audience as built: how many members, their digest, and the ledger receipt."""

    audience: Audience
    change: AudienceChange
    members: int
    digest: str
    receipt: Receipt
    lookalike: Lookalike | None = field(default=None)


def build_partner_audience(
    accord: Accord,
    store: AdsStore,
    audience: Audience,
    how: PartnerMatch,
    *,
    platform_records: Records,
    partner_records: Records,
    built_by: str,
    min_size: int = MIN_AUDIENCE,
    partner_accord: Accord | None = None,
    at: datetime | None = None,
) -> AudienceBuild:
    """Build (or build again) ``audience`` from the partner's people in ``partner_records``.

    Raises :class:`AudienceTooSmall` when fewer than ``min_size`` people match; an audience built
    before is emptied then, so nobody stays in it on an old consent.
    """
    _check_provider(audience, how, store)
    when = at or datetime.now(UTC)
    existed = store.audience(audience.id) is not None
    matched = match_partner_people(
        accord, how, platform_records, partner_records, partner_accord=partner_accord, at=when
    )
    members = sorted(matched.people)
    if len(members) < min_size:
        if existed:
            store.replace_audience_members(audience, ())
            _log(accord, store, audience, how, [], change="rebuilt", built_by=built_by, at=when)
        raise AudienceTooSmall(
            f"only {len(members)} people matched; a partner-data audience needs at least "
            f"{min_size}" + (", so it was emptied" if existed else ", so it was not built"),
            where=f"audience {audience.id}",
        )
    change: AudienceChange = "rebuilt" if existed else "built"
    # The ledger first: no member list reaches the ad system before its entry is durable.
    receipt = _log(accord, store, audience, how, members, change=change, built_by=built_by, at=when)
    store.replace_audience_members(audience, [(p, None) for p in members])
    return AudienceBuild(audience, change, len(members), member_digest(members), receipt)


def build_lookalike_audience(
    accord: Accord,
    store: AdsStore,
    audience: Audience,
    how: PartnerMatch,
    *,
    platform_records: Records,
    seed_records: Records,
    people: Sequence[str],
    features: Floats,
    size: int,
    built_by: str,
    partner_accord: Accord | None = None,
    at: datetime | None = None,
    random_state: int = 0,
    spark: SparkSession | None = None,
) -> AudienceBuild:
    """A lookalike of the partner's seed (``seed_records``, 25 to 500,000 people) among the
    platform's ``people`` (one row of ``features`` each), ``size`` people at most.

    The seed is matched into the platform's people inside this call (the clean room), the model
    is trained and scores there, and only the best-scored platform people outside the seed who
    may take part (fed into the match under the platform's clause) become the audience. The
    seed never leaves: not in the audience, the ledger, or the result. The audience is chosen by
    DuckDB, or by Apache Spark when ``spark`` is given (:mod:`accord.pets.lookalike_sql`).
    """
    _check_provider(audience, how, store)
    seed_list = list(seed_records)
    lookalike.check_seed_size(len({person for person, _ in seed_list}))
    when = at or datetime.now(UTC)
    platform_list = list(platform_records)
    matched = match_partner_people(
        accord, how, platform_list, seed_list, partner_accord=partner_accord, at=when
    )
    keep = [n for n, p in enumerate(people) if p in matched.allowed]
    found = lookalike.build(
        [people[n] for n in keep],
        features[keep],
        matched.people,
        size,
        random_state=random_state,
        spark=spark,
    )
    members = list(found.members)
    receipt = _log(
        accord,
        store,
        audience,
        how,
        members,
        change="lookalike",
        built_by=built_by,
        at=when,
        seed=found.seed,
        recall=f"{found.recall:.4f}",
    )
    store.replace_audience_members(audience, [(p, None) for p in members])
    return AudienceBuild(
        audience, "lookalike", len(members), member_digest(members), receipt, found
    )


def _check_provider(audience: Audience, how: PartnerMatch, store: AdsStore) -> None:
    """Refuse, before anything is matched or logged, an audience that is not the partner's on
    this platform, or whose advertiser the platform does not know."""
    if audience.provider != how.partner or store.platform != how.platform:
        raise InvalidInput(
            f"audience {audience.id} is built from {how.partner}'s data for {how.platform}: its "
            f"provider must be {how.partner} and the store {how.platform}'s",
            where=f"audience {audience.id}",
        )
    if audience.advertiser not in {a.id for a in store.advertisers()}:
        raise NotFound(
            f"no advertiser {audience.advertiser!r} on {store.platform}",
            where=f"audience {audience.id}",
        )


def _log(
    accord: Accord,
    store: AdsStore,
    audience: Audience,
    how: PartnerMatch,
    members: Sequence[str],
    *,
    change: AudienceChange,
    built_by: str,
    at: datetime,
    seed: int | None = None,
    recall: str | None = None,
) -> Receipt:
    did = {
        "built": "built audience",
        "rebuilt": "built again audience",
        "lookalike": "built lookalike audience",
    }[change]
    source = (
        f"people like {how.partner}'s seed, which stayed in the clean room"
        if change == "lookalike"
        else f"{how.partner}'s people matched privately under their consent"
    )
    entry = AudienceEntry(
        agreement=how.agreement,
        clause=how.partner_clause,
        purpose=how.purpose,
        categories=tuple(sorted(how.partner_categories)),
        reason=(
            f"{built_by} {did} {audience.id} for {audience.advertiser} on {store.platform} "
            f"from {source}: {len(members)} members"
        ),
        people=len(members),
        change=change,
        platform=store.platform,
        audience=audience.id,
        advertiser=audience.advertiser,
        provider=how.partner,
        built_by=built_by,
        digest=member_digest(members),
        seed=seed,
        recall=recall,
        at=at,
    )
    return accord.ledger.append([entry])[0]


__all__ = [
    "MIN_AUDIENCE",
    "AudienceBuild",
    "AudienceTooSmall",
    "Matched",
    "PartnerMatch",
    "Records",
    "build_lookalike_audience",
    "build_partner_audience",
    "match_partner_people",
    "member_digest",
    "viewers",
]
