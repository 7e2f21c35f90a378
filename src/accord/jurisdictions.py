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


def _codes(text: str) -> frozenset[str]:
    """The codes in ``text``, separated by white space."""
    return frozenset(text.split())


# ISO 3166-1 alpha-2: the 249 officially assigned country codes.
COUNTRIES = _codes(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR
    BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ
    EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW
    GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY
    KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV
    MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY
    QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG
    TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM
    ZW
    """
)
# ISO 3166-2 subdivisions of the countries whose law differs from one subdivision to the next
# and that Accord's rules name: the US states, district and outlying areas; Canada's provinces
# and territories. Other countries' subdivision codes are checked for their form only.
SUBDIVISIONS: dict[str, frozenset[str]] = {
    "US": _codes(
        """
        AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH
        NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY DC AS GU MP PR UM VI
        """
    ),
    "CA": _codes("AB BC MB NB NL NS NT NU ON PE QC SK YT"),
}


def validate_code(code: str) -> str:
    """A jurisdiction code, upper-cased, or a clear error: an ISO 3166-1 country, or an ISO
    3166-2 subdivision of one (checked against the list for the US and Canada)."""
    norm = code.strip().upper()
    if not _CODE.match(norm):
        raise InvalidInput(
            f"{code!r} is not a jurisdiction: use an ISO 3166 code such as 'US-CA', 'DE' or 'CA'"
        )
    land, _, part = norm.partition("-")
    if land not in COUNTRIES:
        raise InvalidInput(
            f"{code!r} is not a jurisdiction: {land!r} is not an ISO 3166-1 country code"
        )
    known = SUBDIVISIONS.get(land)
    if part and known is not None and part not in known:
        raise InvalidInput(
            f"{code!r} is not a jurisdiction: {land}-{part} is not an ISO 3166-2 subdivision "
            f"of {land}"
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
