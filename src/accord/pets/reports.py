"""Reports that run in the clean room: the fortnightly recommendation report and ad measurement.

* **The report every two weeks** of the partnership the 2024 Klein v. Meta filings describe: daily
  counts of recommendation sends and of recipients' clicks, by interface, initiation surface and
  implementation variant. Here it is a query under an aggregation rule: no row counts fewer than
  the agreement's 50 senders, and with differential privacy each count is noised, which rows show
  is chosen by a noisy count of their senders, and every sender pays from their budget.
* **Ad measurement**: how many people a publisher's campaign reached, and how many of them then
  converted at the advertiser (a conversion after the exposure), joined on the identifier both
  sides share, with no side seeing the other's rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlglot import exp

from accord.pets.cleanroom import CleanRoom, Result
from accord.pets.rules import AnalysisRule, PrivacyRule, RuleKind, TableRule

REPORT_MIN_PEOPLE = 50
"""The agreement's floor: no row of the report counts fewer senders."""
REPORT_COLUMNS = ("day", "interface", "surface", "variant", "sends", "clicks")


def report_rule(
    *, min_people: int = REPORT_MIN_PEOPLE, privacy: PrivacyRule | None = None
) -> AnalysisRule:
    """The aggregation rule the fortnightly report runs under (over ``recommendations``)."""
    return AnalysisRule(
        kind=RuleKind.AGGREGATION,
        tables={"recommendations": TableRule(person="sender_member_id")},
        dimensions=frozenset(
            {
                "recommendations.sent_at",
                "recommendations.interface",
                "recommendations.surface",
                "recommendations.variant",
            }
        ),
        metrics={"recommendations.clicked_at": frozenset({"count"})},
        min_people=min_people,
        privacy=privacy,
    )


def report_query(start: date, days: int = 14, *, by_day: bool = True) -> str:
    """The report's query for the ``days`` from ``start`` (grouped by day unless told not to)."""
    end = start + timedelta(days=days)
    keys = ["interface", "surface", "variant"]
    if by_day:
        keys.insert(0, "CAST(sent_at AS DATE) AS day")
    positions = [str(n) for n in range(1, len(keys) + 1)]
    query = (
        exp.select(*keys, "count(*) AS sends", "count(clicked_at) AS clicks", dialect="duckdb")
        .from_("recommendations")
        .where(
            exp.column("sent_at") >= exp.Literal.string(start.isoformat()),
            exp.column("sent_at") < exp.Literal.string(end.isoformat()),
        )
        .group_by(*positions)
        .order_by(*positions)
    )
    return query.sql("duckdb")


def fortnightly_report(
    room: CleanRoom, start: date, days: int = 14, *, by_day: bool = True
) -> Result:
    """Sends and clicks by day, interface, surface and variant, for the fortnight from ``start``."""
    return room.run(report_query(start, days, by_day=by_day))


# -- ad measurement --------------------------------------------------------------------------------


def measurement_rule(
    *, min_people: int = REPORT_MIN_PEOPLE, privacy: PrivacyRule | None = None
) -> AnalysisRule:
    """The aggregation rule for ad measurement.

    ``exposures`` (the publisher's): ``person_id``, ``campaign``, ``exposed_at``.
    ``conversions`` (the advertiser's): ``member_id``, ``chirp_person_id`` (the publisher's id
    for the member, from an account link the member made), ``converted_at``, ``value``.
    """
    return AnalysisRule(
        kind=RuleKind.AGGREGATION,
        tables={
            "exposures": TableRule(person="person_id"),
            "conversions": TableRule(person="member_id"),
        },
        dimensions=frozenset(
            {"exposures.campaign", "exposures.exposed_at", "conversions.converted_at"}
        ),
        metrics={
            "exposures.person_id": frozenset({"count_distinct"}),
            "conversions.member_id": frozenset({"count_distinct"}),
            "conversions.value": frozenset({"sum"}),
        },
        join_columns=frozenset({"exposures.person_id", "conversions.chirp_person_id"}),
        min_people=min_people,
        privacy=privacy,
    )


REACH_QUERY = (
    "SELECT campaign, count(DISTINCT person_id) AS reached FROM exposures "
    "GROUP BY campaign ORDER BY campaign"
)
CONVERSION_QUERY = (
    "SELECT e.campaign, count(DISTINCT c.member_id) AS converters, sum(c.value) AS value "
    "FROM exposures AS e JOIN conversions AS c ON e.person_id = c.chirp_person_id "
    "WHERE c.converted_at >= e.exposed_at GROUP BY e.campaign ORDER BY e.campaign"
)


@dataclass(frozen=True, slots=True)
class CampaignMeasure:
    """One campaign's reach and conversions (``None`` where its row fell below the minimum)."""

    campaign: str
    reached: float
    converters: float | None
    value: float | None

    @property
    def conversion_rate(self) -> float | None:
        """Converters per person reached."""
        if self.converters is None or self.reached <= 0:
            return None
        return max(0.0, self.converters / self.reached)


def ad_measurement(room: CleanRoom) -> list[CampaignMeasure]:
    """Each campaign's reach, converters (after exposure) and conversion value."""
    reach = room.run(REACH_QUERY)
    conversions = room.run(CONVERSION_QUERY)
    converted: dict[Any, tuple[Any, Any]] = {row[0]: (row[1], row[2]) for row in conversions.rows}
    out = []
    for campaign, reached in reach.rows:
        converters, value = converted.get(campaign, (None, None))
        out.append(
            CampaignMeasure(
                str(campaign),
                float(reached),
                None if converters is None else float(converters),
                None if value is None else float(value),
            )
        )
    return out
