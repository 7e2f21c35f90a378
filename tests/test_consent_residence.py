"""A consent record never moves a person: where they live comes from the party that holds them.

A consent's own jurisdiction says where it was collected. Recording one must leave the person's
residence as the party recorded it, so the laws of their home keep binding their data.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from accord.consent import Method, Person
from accord.errors import ConsentError, InvalidInput
from accord.jurisdictions import validate_code
from accord.service import Accord
from accord.store.repositories import PeopleRepository
from builders import NOW, consent

DAY = timedelta(days=1)


@pytest.fixture
def accord(tmp_path: Path) -> Iterator[Accord]:
    with Accord.open(data_dir=tmp_path) as opened:
        opened.add_party("chirp")
        opened.add_party("reelix")
        opened.add_people([Person("p1", "chirp", "US-NY"), Person("p2", "chirp", "DE")])
        yield opened


@pytest.mark.integration
def test_a_consent_collected_elsewhere_leaves_the_person_where_they_live(accord: Accord) -> None:
    # the finding: --jurisdiction CA --bundled on a US member rewrote their residence to Canada
    accord.grant(consent("p1", jurisdiction="CA", distinct_and_separate=False))
    assert accord.person("chirp", "p1").jurisdiction == "US-NY"
    (stored,) = accord.consents("chirp", "p1")
    assert stored.jurisdiction == "CA"  # where it was collected, as recorded


@pytest.mark.integration
def test_the_gdpr_binds_a_consent_by_where_the_person_lives(accord: Accord) -> None:
    # p2 lives in Germany: a consent bundled with other terms cannot stand under Art. 7(2),
    # whatever place the record says it was collected in.
    with pytest.raises(ConsentError, match=r"Art\. 7\(2\)"):
        accord.grant(consent("p2", jurisdiction="CA", distinct_and_separate=False))
    assert accord.consents("chirp", "p2") == []
    assert accord.person("chirp", "p2").jurisdiction == "DE"
    # and withdrawing a consent of a person living in the GDPR region asks for erasure
    record = accord.grant(consent("p2", jurisdiction="US-NY", method=Method.IN_APP_DIALOG))
    _, duty = accord.withdraw(record.id, NOW + DAY)
    assert duty.erase
    assert duty.notify == {"reelix"}


@pytest.mark.integration
def test_a_consent_for_a_person_the_party_does_not_hold_is_refused(accord: Accord) -> None:
    with pytest.raises(ConsentError, match="holds no person 'p9'"):
        accord.grant(consent("p9", jurisdiction="CA"))
    with accord.session() as s:
        assert "p9" not in PeopleRepository(s).get_many("chirp")


@pytest.mark.unit
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("US-CA", "US-CA"),  # California
        ("de", "DE"),  # Germany, in any case
        ("GB", "GB"),  # the United Kingdom's ISO code
        ("CA-QC", "CA-QC"),  # Quebec
        ("FR-75", "FR-75"),  # Paris: another country's subdivision, checked for its form
        ("XX-YY", None),  # no country XX
        ("XX", None),
        ("UK", None),  # the UK is GB in ISO 3166-1
        ("US-XX", None),  # no state XX
        ("CA-ZZ", None),  # no Canadian province ZZ
        ("California", None),
    ],
)
def test_jurisdictions_are_iso_3166_codes(code: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidInput, match="not a jurisdiction"):
            validate_code(code)
    else:
        assert validate_code(code) == expected
