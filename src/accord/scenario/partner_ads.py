"""Reelix's data in Chirp's ads in the reference scenario: an audience of a genre's viewers, the
same audience after some of them withdraw, a lookalike of it, and a campaign's conversion lift.

Everything runs under the published ``chirp-reelix-partner-ads`` agreement (registered, reviewed
and made active here if the store does not hold it yet), through :mod:`accord.ads.audiences`:
Reelix's viewers take part only with their consent to Chirp using their watch history for
advertising (the scenario's "interest segments for ads" prompt), and nobody who opted out of
sale or sharing takes part on either side.

Chirp's features for the lookalike are its own: how many of a person's posts are about each
interest (:data:`accord.scenario.ads.POST_INTERESTS`) and how many friends they have. The lift's
conversions (Reelix sign-ups and plays) are simulated at Reelix with a planted effect, since the
scenario's databases hold no campaign afterwards: a member converts with :data:`BASE_RATE`, plus
:data:`PLANTED_EFFECT` if their Chirp account is in the exposed group. They reach the clean room
matched privately under the members' consent, like the audiences
(:func:`accord.ads.measurement.partner_lift`).
"""

from __future__ import annotations

import random
import sqlite3
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np

from accord import agreements as ag
from accord.ads.audiences import (
    MIN_AUDIENCE,
    AudienceTooSmall,
    PartnerMatch,
    build_lookalike_audience,
    build_partner_audience,
    viewers,
)
from accord.ads.measurement import LiftStudy, holdout_audience, partner_lift
from accord.ads.model import Audience
from accord.ads.store import AdsStore
from accord.errors import InvalidInput, NotFound
from accord.pets import dp
from accord.pets.budget import BudgetExceeded, PrivacyBudgets
from accord.pets.checks import QueryRefused
from accord.pets.engines import duck, quote
from accord.pets.lift import Lift
from accord.pets.lookalike_sql import features_on
from accord.scenario.ads import POST_INTERESTS, REELIX_ADVERTISER
from accord.scenario.population import CHIRP, REELIX, person_id
from accord.service import Accord
from accord.taxonomy import THIRD_PARTY_TARGETED_ADS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from pyspark.sql import SparkSession

AGREEMENT = "chirp-reelix-partner-ads"
HOW = PartnerMatch(
    agreement=AGREEMENT,
    platform_clause="chirp-people",
    partner_clause="reelix-viewers",
    platform=CHIRP,
    partner=REELIX,
    purpose=THIRD_PARTY_TARGETED_ADS,
    platform_categories=frozenset({"user.contact.email"}),
    partner_categories=frozenset({"user.behavior.media_consumption"}),
)
BASE_RATE = 0.04
"""Simulated conversion rate of the holdout."""
PLANTED_EFFECT = 0.015
"""Simulated extra conversion rate of the exposed group: what the lift should find."""
WITHDRAWALS = 3
"""Reelix members in the audience who withdraw their consent before it is built again."""


@dataclass(frozen=True, slots=True)
class PartnerAdsShown:
    """What the run did, in numbers a report can print (never a person's id)."""

    genre: str
    viewers: int
    """Reelix's viewers of the genre (before anyone's consent is looked at)."""
    audience: int | None
    """Members of the custom audience, None if it was refused as too small."""
    refused: str | None
    withdrawn: int
    rebuilt: int | None
    """Members after the withdrawals, None if the rebuilt audience was refused."""
    lookalike: int | None
    seed: int | None
    recall: float | None
    lift: Lift | None
    planted: float = PLANTED_EFFECT

    def to_json(self) -> dict[str, Any]:
        """A JSON object."""
        return {
            "genre": self.genre,
            "viewers": self.viewers,
            "audience": self.audience,
            "refused": self.refused,
            "withdrawn": self.withdrawn,
            "rebuilt": self.rebuilt,
            "lookalike": self.lookalike,
            "seed": self.seed,
            "recall": self.recall,
            "lift": None if self.lift is None else self.lift.to_json(),
            "planted_effect": self.planted,
        }


def register(accord: Accord, on: date | None = None) -> None:
    """Register, review and activate the partner-ads agreement unless the store holds it."""
    try:
        accord.agreement(AGREEMENT)
    except NotFound:
        pass
    else:
        return
    source = f"{AGREEMENT}.yaml"
    text = (resources.files("accord") / "examples" / source).read_text()
    accord.register(text, source=source, by="partnerships team")
    accord.review(
        AGREEMENT,
        reviewer="Privacy review board",
        findings="Viewers matched only with their consent and never if opted out; audiences of "
        "at least 100; the seed stays in the clean room; lift aggregates with k=50 and noise.",
        approved=True,
        on=on,
    )
    accord.move(AGREEMENT, ag.Status.ACTIVE, by="privacy review board")


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        return conn.execute(sql).fetchall()


FEATURE_TABLES = ("people", "feed_posts", "friendships", "post_interests")
"""Chirp's tables the lookalike's features are computed from (``post_interests``: each post
body's interest, :data:`accord.scenario.ads.POST_INTERESTS`)."""


def features_sql(interests: Sequence[str]) -> str:
    """Chirp's features of each person in DuckDB's dialect: posts about each of ``interests``,
    and friends (their count; the logarithm is taken afterwards, in this process, so that both
    engines give the same numbers)."""
    per_interest = ", ".join(
        f"sum(CASE WHEN i.interest = {_text(i)} THEN 1 ELSE 0 END) AS {quote(i)}" for i in interests
    )
    columns = ", ".join(f"coalesce(t.{quote(i)}, 0) AS {quote(i)}" for i in interests)
    return (
        f"SELECT p.person_id AS person, {columns}, coalesce(f.friends, 0) AS friends "  # noqa: S608 - our names
        "FROM people AS p "
        f"LEFT JOIN (SELECT fp.person_id, {per_interest} FROM feed_posts AS fp "
        "JOIN post_interests AS i ON fp.body = i.body GROUP BY fp.person_id) AS t "
        "ON t.person_id = p.person_id "
        "LEFT JOIN (SELECT person_id, count(*) AS friends FROM friendships GROUP BY person_id) "
        "AS f ON f.person_id = p.person_id"
    )


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def chirp_features(
    chirp_db: Path, *, spark: SparkSession | None = None
) -> tuple[list[str], np.ndarray[Any, np.dtype[np.float64]]]:
    """Chirp's people and its own features of each: posts per interest and log(1 + friends),
    computed by DuckDB, or by Apache Spark when ``spark`` is given (the same numbers)."""
    interests = sorted(set(POST_INTERESTS.values()))
    with duckdb.connect(":memory:") as db:
        with duck("loading Chirp's tables for the lookalike"):
            for table, sql, columns in (
                ("people", "SELECT person_id FROM people", ("person_id",)),
                ("feed_posts", "SELECT person_id, body FROM feed_posts", ("person_id", "body")),
                ("friendships", "SELECT person_id FROM friendships", ("person_id",)),
            ):
                rows = _rows(chirp_db, sql)
                _load(db, table, columns, [[r[n] for r in rows] for n in range(len(columns))])
            _load(
                db,
                "post_interests",
                ("body", "interest"),
                [list(POST_INTERESTS), list(POST_INTERESTS.values())],
            )
        people, _names, features = features_on(
            db, FEATURE_TABLES, features_sql(interests), spark=spark
        )
    features[:, -1] = np.log1p(features[:, -1])
    return people, features


def _load(
    db: duckdb.DuckDBPyConnection, table: str, columns: Sequence[str], values: list[list[Any]]
) -> None:
    """A table of text columns from whole columns at once (unnested side by side)."""
    select = ", ".join(f"unnest(?::VARCHAR[]) AS {quote(c)}" for c in columns)
    db.execute(f"CREATE TABLE {quote(table)} AS SELECT {select}", values)


def run_partner_ads(
    accord: Accord,
    chirp_db: Path,
    reelix_db: Path,
    *,
    genre: str | None = None,
    min_size: int = MIN_AUDIENCE,
    lookalike_size: int | None = None,
    epsilon: float = 1.0,
    seed: int = 7,
    at: datetime | None = None,
    spark: SparkSession | None = None,
) -> PartnerAdsShown:
    """Build Reelix's audience of ``genre``'s viewers (the most watched genre by default) on
    Chirp, withdraw a few viewers' consent and build it again, build a lookalike of the viewers,
    and measure a campaign's conversion lift; each step's ledger entries are written as it runs.
    The lookalike's features and audience and the lift's counts are computed by DuckDB, or by
    Apache Spark when ``spark`` is given.
    """
    when = at or datetime.now(UTC)
    # Each step at an instant of its own, after the one before by either side's clock: a release
    # and a withdrawal at the same instant would leave an auditor unable to tell which came first
    # (a consent withdrawn at t is not in force at t), and the partner's side of a match decides
    # and logs at its own clock (the server does not take the client's word for the time).
    later = when
    register(accord, when.date())
    store = AdsStore(accord.engine, CHIRP)
    if REELIX_ADVERTISER.id not in {a.id for a in store.advertisers()}:
        store.add_advertiser(REELIX_ADVERTISER)
    chirp_records = _rows(chirp_db, "SELECT person_id, email FROM people ORDER BY person_id")
    emails = dict(_rows(reelix_db, "SELECT member_id, email FROM members"))
    watches = _rows(
        reelix_db,
        "SELECT w.member_id, w.title_id, t.genre FROM watch_events w "
        "JOIN titles t ON t.title_id = w.title_id",
    )
    chosen = genre or Counter(g for _m, _t, g in watches).most_common(1)[0][0]
    watched = viewers(watches, genre=chosen)
    reelix_records = [(m, emails[m]) for m in sorted(watched) if m in emails]
    audience = Audience(
        f"reelix-{chosen}-viewers".lower().replace(" ", "-")[:64],
        REELIX_ADVERTISER.id,
        f"Reelix {chosen} viewers",
        provider=REELIX,
    )

    def build(moment: datetime) -> int:
        return build_partner_audience(
            accord,
            store,
            audience,
            HOW,
            platform_records=chirp_records,
            partner_records=reelix_records,
            built_by=REELIX_ADVERTISER.id,
            min_size=min_size,
            at=moment,
        ).members

    refused = None
    size = rebuilt = None
    withdrawn = 0
    try:
        size = build(when)
    except AudienceTooSmall as exc:
        refused = exc.message
    else:
        # Viewers who are on Chirp too, so that their leaving shows in the rebuilt audience.
        on_chirp = {email for _person, email in chirp_records}
        withdrawn_at = max(when + timedelta(milliseconds=1), datetime.now(UTC))
        withdrawn = _withdraw_some(
            accord, [m for m in sorted(watched) if emails.get(m) in on_chirp], withdrawn_at
        )
        later = max(withdrawn_at + timedelta(milliseconds=1), datetime.now(UTC))
        try:
            rebuilt = build(later)
        except AudienceTooSmall as exc:
            refused = exc.message

    people, features = chirp_features(chirp_db, spark=spark)
    lookalike = seed_size = recall = None
    try:
        made = build_lookalike_audience(
            accord,
            store,
            Audience(
                f"{audience.id}-like"[:64], audience.advertiser, "Like " + audience.name, REELIX
            ),
            HOW,
            platform_records=chirp_records,
            seed_records=reelix_records,
            people=people,
            features=features,
            size=lookalike_size or max(1, len(people) // 10),
            built_by=REELIX_ADVERTISER.id,
            at=later,
            random_state=seed,
            spark=spark,
        )
    except InvalidInput:
        pass  # a seed outside 25 to 500,000 people after consent: no lookalike
    else:
        lookalike = made.members
        if made.lookalike is not None:
            seed_size, recall = made.lookalike.seed, made.lookalike.recall

    return PartnerAdsShown(
        genre=chosen,
        viewers=len(watched),
        audience=size,
        refused=refused,
        withdrawn=withdrawn,
        rebuilt=rebuilt,
        lookalike=lookalike,
        seed=seed_size,
        recall=recall,
        lift=_lift(
            accord,
            store,
            audience,
            chirp_records=chirp_records,
            emails=emails,
            epsilon=epsilon,
            seed=seed,
            at=later,
            spark=spark,
        ),
    )


def _withdraw_some(accord: Accord, members: list[str], at: datetime) -> int:
    """Withdraw the ads consent of the first :data:`WITHDRAWALS` viewers who gave one."""
    done = 0
    for member in members:
        for consent in accord.consents(REELIX, member):
            if (
                consent.recipient == CHIRP
                and THIRD_PARTY_TARGETED_ADS in consent.purposes
                and consent.withdrawn_at is None
            ):
                accord.withdraw(consent.id, at)
                done += 1
                break
        if done == WITHDRAWALS:
            break
    return done


def _lift(
    accord: Accord,
    store: AdsStore,
    audience: Audience,
    *,
    chirp_records: list[tuple[str, str]],
    emails: dict[str, str],
    epsilon: float,
    seed: int,
    at: datetime,
    spark: SparkSession | None,
) -> Lift | None:
    """The conversion lift of a Reelix campaign to everyone on Chirp (as its "originals"
    campaign targets); the holdout is an audience it excludes. Reelix's conversions are
    simulated on its side (the world knows which Chirp person each member is, by their index)
    and matched into Chirp in the room under the members' consent."""
    eligible = [person for person, _email in chirp_records]
    study = LiftStudy(f"{audience.id}-lift", CHIRP, REELIX, AGREEMENT, "lift-report", holdout=0.3)
    held = holdout_audience(
        store,
        Audience(f"{audience.id}-holdout"[:64], audience.advertiser, "Lift holdout"),
        eligible,
        study.study,
        study.holdout,
    )
    rng = random.Random(f"{seed}:conversions")
    members = sorted(emails)
    converters = [
        m
        for m in members
        if rng.random()
        < BASE_RATE + (0.0 if person_id(CHIRP, int(m[1:])) in held else PLANTED_EFFECT)
    ]
    try:
        result, _receipt = partner_lift(
            accord,
            study,
            HOW,
            dp.Privacy(epsilon),
            eligible=eligible,
            platform_records=chirp_records,
            member_records=[(m, emails[m]) for m in members],
            conversion_records=[(m, emails[m]) for m in converters],
            budgets=PrivacyBudgets(accord.engine, accord.ledger),
            at=at,
            spark=spark,
        )
    except (QueryRefused, BudgetExceeded):
        return None  # a group under 50 people, or someone's privacy budget spent
    return result


__all__ = [
    "AGREEMENT",
    "BASE_RATE",
    "FEATURE_TABLES",
    "HOW",
    "PLANTED_EFFECT",
    "PartnerAdsShown",
    "chirp_features",
    "features_sql",
    "register",
    "run_partner_ads",
]
