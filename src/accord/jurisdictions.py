"""Jurisdictions: ISO 3166-1 alpha-2 countries and ISO 3166-2 subdivisions, and named regions.

A person's jurisdiction is a code such as ``US-CA`` (California), ``DE`` (Germany) or ``CA``
(Canada). Regions name groups of them (``EU``, ``EEA``, ``LATAM``) so agreements and laws can say
where they apply. A country code covers all of its subdivisions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from accord.errors import InvalidInput

EU = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "HR",
        "CY",
        "CZ",
        "DK",
        "EE",
        "FI",
        "FR",
        "DE",
        "GR",
        "HU",
        "IE",
        "IT",
        "LV",
        "LT",
        "LU",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SK",
        "SI",
        "ES",
        "SE",
    ]
)
EEA = EU | {"IS", "LI", "NO"}
# Latin America: the Spanish- and Portuguese-speaking countries of the Americas.
LATAM = frozenset(
    [
        "AR",
        "BO",
        "BR",
        "CL",
        "CO",
        "CR",
        "CU",
        "DO",
        "EC",
        "SV",
        "GT",
        "HN",
        "MX",
        "NI",
        "PA",
        "PY",
        "PE",
        "PR",
        "UY",
        "VE",
    ]
)

REGIONS: dict[str, frozenset[str]] = {
    "EU": EU,
    "EEA": EEA,
    # The GDPR's reach as Accord applies it: the EEA, and the UK GDPR which keeps its rules.
    "GDPR": EEA | {"GB"},
    "LATAM": LATAM,
    "NORTH_AMERICA": frozenset({"US", "CA", "MX"}),
}

_CODE = re.compile(r"^[A-Z]{2}(-[A-Z0-9]{1,3})?$")


def validate_code(code: str) -> str:
    """A jurisdiction code, upper-cased, or a clear error."""
    norm = code.strip().upper()
    if not _CODE.match(norm):
        raise InvalidInput(
            f"{code!r} is not a jurisdiction: use an ISO 3166 code such as 'US-CA', 'DE' or 'CA'"
        )
    return norm


def country(code: str) -> str:
    """The country part of a jurisdiction code: ``US-CA`` gives ``US``."""
    return code.split("-", 1)[0]


@dataclass(frozen=True, slots=True)
class Jurisdictions:
    """A set of jurisdictions: whole countries and single subdivisions, or everywhere.

    This is a set a database can test with ``country IN (...) OR jurisdiction IN (...)``.
    Everywhere may leave places out (``except_countries``, ``except_subdivisions``: see
    :meth:`everywhere_but`), tested with ``NOT (country IN (...) OR jurisdiction IN (...))``.
    """

    countries: frozenset[str] = frozenset()
    subdivisions: frozenset[str] = frozenset()
    everywhere: bool = False
    label: str = field(default="", compare=False)
    except_countries: frozenset[str] = frozenset()
    except_subdivisions: frozenset[str] = frozenset()

    @classmethod
    def everywhere_but(cls, *others: Jurisdictions, label: str = "") -> Jurisdictions:
        """Every place that none of ``others`` contains (what no other rule covers)."""
        countries: set[str] = set()
        subdivisions: set[str] = set()
        for other in others:
            if other.everywhere:
                raise InvalidInput("everywhere_but takes sets of places, not everywhere")
            countries |= other.countries
            subdivisions |= other.subdivisions
        return cls(
            everywhere=True,
            label=label,
            except_countries=frozenset(countries),
            # A subdivision of a country already left out needs no mention of its own.
            except_subdivisions=frozenset(s for s in subdivisions if country(s) not in countries),
        )

    @classmethod
    def of(cls, names: Iterable[str]) -> Jurisdictions:
        """From region names, country codes and subdivision codes; ``*`` means everywhere."""
        names = tuple(names)
        countries: set[str] = set()
        subdivisions: set[str] = set()
        for raw in names:
            name = raw.strip().upper()
            if name == "*":
                return cls(everywhere=True)
            if name in REGIONS:
                countries |= REGIONS[name]
                continue
            code = validate_code(raw.strip())
            (subdivisions if "-" in code else countries).add(code)
        return cls(
            frozenset(countries),
            frozenset(subdivisions),
            label=", ".join(n.strip().upper() for n in names),
        )

    def contains(self, code: str) -> bool:
        """Whether the jurisdiction ``code`` is in this set."""
        if self.everywhere:
            return (
                code not in self.except_subdivisions and country(code) not in self.except_countries
            )
        return code in self.subdivisions or country(code) in self.countries

    def describe(self) -> str:
        """A short phrase for reasons: 'everywhere' or the sorted codes."""
        if self.label:
            return self.label
        if self.everywhere:
            left_out = sorted(self.except_countries | self.except_subdivisions)
            return "everywhere" + (f" but {', '.join(left_out)}" if left_out else "")
        for name, members in REGIONS.items():
            if self.countries == members and not self.subdivisions:
                return name
        return ", ".join(sorted(self.countries | self.subdivisions)) or "nowhere"


EVERYWHERE = Jurisdictions(everywhere=True)
