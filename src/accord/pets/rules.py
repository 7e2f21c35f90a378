"""Clean-room analysis rules, in the manner of AWS Clean Rooms, and their YAML form.

Three kinds, as AWS Clean Rooms has them (*AWS Clean Rooms User Guide*, "Analysis rules"):

* **aggregation**: queries may only aggregate. They group by allowed *dimensions*, compute allowed
  aggregate functions of allowed *metrics*, join only on *join columns*, and every output row must
  count at least ``min_people`` distinct people of every table it reads (rows below are dropped).
  Optionally each answer gets differential-privacy noise and spends every person's budget; then
  a row shows only if its count of people plus noise reaches a threshold of at least
  ``min_people``, so that which rows show is differentially private too.
* **list**: queries list the overlap of the tables (their rows that join) with allowed columns
  only; no aggregation.
* **custom**: only pre-approved query templates run, their ``$name`` placeholders filled with
  literals.

A rule names its tables and, for each, the column holding whom a row is about (its person).
Columns are written ``table.column``. Example::

    kind: aggregation
    tables:
      recommendations: {person: sender_member_id}
    dimensions: [recommendations.sent_at, recommendations.interface]
    metrics:
      recommendations.clicked_at: [count]
    min_people: 50
    privacy: {mechanism: laplace, epsilon: 0.5, delta: 1e-8, max_rows: 20}
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from accord.documents import Loc, parse_document, read_text
from accord.errors import DocumentFormatError, InvalidInput
from accord.pets.dp import Bounds, Privacy
from accord.pets.mechanisms import Mechanism


class RuleKind(StrEnum):
    """The three kinds of analysis rule."""

    AGGREGATION = "aggregation"
    LIST = "list"
    CUSTOM = "custom"


class Aggregate(StrEnum):
    """Aggregate functions a metric may allow."""

    COUNT = "count"
    COUNT_DISTINCT = "count_distinct"
    SUM = "sum"
    AVG = "avg"


def _qualified(name: str) -> str:
    parts = name.split(".")
    if len(parts) != 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{name!r} must be written table.column")
    return name.lower()


def _identifier(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"{name!r} is not a plain name (letters, digits and _)")
    return name.lower()


Qualified = Annotated[str, AfterValidator(_qualified)]
Name = Annotated[str, AfterValidator(_identifier)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TableRule(_Strict):
    """A table the rule lets queries read, and its column saying whom each row is about."""

    person: Name


class PrivacyRule(_Strict):
    """Differential privacy for an aggregation rule's answers: which groups show, and their numbers.

    A query's ``epsilon`` and ``delta`` are its whole loss, charged to each person it reads. Part
    goes to choosing which groups to show (a noisy count of each group's people must reach a
    threshold of at least ``min_people``): ``selection_epsilon``, or by default an even share with
    the query's aggregates (a query of two aggregates gives each of the three a third). The rest
    is split evenly over the aggregates. Laplace noise on the aggregates is pure epsilon-DP, so
    the selection takes all of ``delta``; Gaussian noise needs some too, and the selection then
    takes the same share of ``delta`` as of ``epsilon``.
    """

    mechanism: Mechanism = Mechanism.LAPLACE
    epsilon: float = Field(gt=0)
    """Privacy loss of one query in all, charged to each person whose data it reads."""
    delta: float = Field(default=0.0, ge=0, lt=1)
    """Delta of one query in all, charged likewise; above 0, for the choice of groups."""
    selection_epsilon: float | None = Field(default=None, gt=0)
    """The part of ``epsilon`` that chooses which groups show (default: an even share)."""
    max_rows: int = Field(default=1, ge=1)
    """Rows one person may contribute to a query (the rest are dropped at random)."""
    bounds: dict[Qualified, tuple[float, float]] = Field(default_factory=dict)
    """``table.column: [lower, upper]`` for every metric that is summed or averaged."""

    @model_validator(mode="after")
    def _consistent(self) -> PrivacyRule:
        if self.delta <= 0:
            raise ValueError(
                "privacy needs a delta above 0 (for example 1e-8): the rule's min_people is "
                "applied to noisy counts of each group's people, and which groups show at all "
                "is (epsilon, delta)-differentially private, delta being the chance that a group "
                "only one person makes reaches the threshold"
            )
        if self.selection_epsilon is not None and self.selection_epsilon >= self.epsilon:
            raise ValueError(
                f"selection_epsilon ({self.selection_epsilon}) must be less than epsilon "
                f"({self.epsilon}): the rest is the aggregates'"
            )
        try:
            self.shares(1)
            for lower, upper in self.bounds.values():
                Bounds(self.max_rows, lower, upper)
        except InvalidInput as exc:
            raise ValueError(exc.message) from exc
        return self

    def shares(self, aggregates: int) -> tuple[tuple[float, float], Privacy]:
        """A query's loss split in two: the selection's ``(epsilon, delta)``, and the loss of
        its ``aggregates`` together (to be split evenly over them)."""
        if aggregates < 1:
            raise InvalidInput(f"a query has at least one aggregate, not {aggregates}")
        epsilon = self.selection_epsilon or self.epsilon / (aggregates + 1)
        if self.mechanism is Mechanism.LAPLACE:
            delta = self.delta
        else:
            delta = self.delta * epsilon / self.epsilon
        rest = Privacy(
            _remainder(self.epsilon, epsilon),
            self.mechanism,
            _remainder(self.delta, delta) if self.mechanism is Mechanism.GAUSSIAN else 0.0,
        )
        return (epsilon, delta), rest


def _remainder(whole: float, part: float) -> float:
    """``whole - part``, rounded down so that the two never add up to more than ``whole``."""
    rest = whole - part
    while rest > 0 and part + rest > whole:
        rest = math.nextafter(rest, 0)
    return rest


class AnalysisRule(_Strict):
    """One analysis rule (see the module docstring)."""

    kind: RuleKind
    tables: Annotated[dict[Name, TableRule], Field(min_length=1)]
    # aggregation
    dimensions: frozenset[Qualified] = frozenset()
    metrics: dict[Qualified, frozenset[Aggregate]] = Field(default_factory=dict)
    min_people: int | None = Field(default=None, ge=2)
    privacy: PrivacyRule | None = None
    # aggregation and list
    join_columns: frozenset[Qualified] = frozenset()
    # list
    columns: frozenset[Qualified] = frozenset()
    # custom
    templates: dict[Name, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known_tables(self) -> AnalysisRule:
        named = [*self.dimensions, *self.metrics, *self.join_columns, *self.columns]
        if self.privacy is not None:
            named += list(self.privacy.bounds)
        for column in named:
            if column.split(".")[0] not in self.tables:
                raise ValueError(f"{column} names a table the rule does not list")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> AnalysisRule:
        aggregation = self.kind is RuleKind.AGGREGATION
        if aggregation and self.min_people is None:
            raise ValueError("an aggregation rule needs min_people (distinct people per row)")
        if aggregation and not self.metrics:
            raise ValueError("an aggregation rule needs at least one metric")
        if not aggregation and (self.dimensions or self.metrics or self.min_people):
            raise ValueError("dimensions, metrics and min_people belong to aggregation rules")
        if not aggregation and self.privacy is not None:
            raise ValueError("privacy applies to aggregation rules")
        if self.kind is RuleKind.LIST and not self.columns:
            raise ValueError("a list rule needs the columns it may list")
        if self.kind is not RuleKind.LIST and self.columns:
            raise ValueError("columns belong to list rules")
        if self.kind is RuleKind.CUSTOM and not self.templates:
            raise ValueError("a custom rule needs at least one query template")
        if self.kind is not RuleKind.CUSTOM and self.templates:
            raise ValueError("templates belong to custom rules")
        if self.privacy is not None:
            for column, functions in self.metrics.items():
                if functions & {Aggregate.SUM, Aggregate.AVG} and column not in self.privacy.bounds:
                    raise ValueError(
                        f"metric {column} may be summed or averaged: privacy.bounds must clamp it"
                    )
        return self

    def person_of(self, table: str) -> str:
        """The column of ``table`` saying whom each row is about."""
        return self.tables[table].person


def parse_rule(text: str, *, source: str = "<rule>") -> AnalysisRule:
    """An analysis rule from its YAML text; errors say file, line and field."""

    def model_at(_loc: Loc) -> type[BaseModel]:
        return AnalysisRule

    return parse_document(
        text,
        AnalysisRule,
        source=source,
        what="an analysis rule",
        error=DocumentFormatError,
        model_at=model_at,
    )


def load_rule(path: Path) -> AnalysisRule:
    """An analysis rule from a YAML file."""
    return parse_rule(read_text(path, what="the rule file"), source=str(path))
