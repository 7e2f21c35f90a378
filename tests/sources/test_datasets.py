"""Dataset declarations: the model, and errors that name the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from accord.errors import InvalidInput
from accord.sources import DatasetFormatError, load, parse
from sources.conftest import DATASET

pytestmark = pytest.mark.unit


def test_a_declaration_parses_into_its_model() -> None:
    d = parse(DATASET, source="reelix.yaml")
    assert (d.id, d.party) == ("reelix", "reelix")
    events = d.collection("watch_events")
    assert events.person == "member_id"
    assert events.subject_field == "member_id"
    messages = d.collection("messages")
    assert messages.person is None
    assert messages.group is not None
    assert messages.subject_field == "thread_id"
    assert messages.group.members == "thread_participants"
    assert d.field("watch_events.title_id").category == "user.behavior.media_consumption"
    assert d.categories()["messages.body"] == "user.content.private"
    assert d.fields_in(["user.behavior"]) == {
        "watch_events.title_id",
        "watch_events.watched_at",
        "ratings.stars",
    }
    assert d.fields_in(["user.content.private", "user.device"]) == {
        "messages.body",
        "watch_events.device",
    }
    assert d.fields_in(["user.content"]) == {"messages.body"}  # a parent covers its children
    assert d.fields_in([]) == frozenset()
    assert events.relation_of is None  # a viewing is the member's own, no one's relation
    friends = parse(
        edit("    person: member_no\n", "    person: member_no\n    relation_of: member_no\n")
    ).collection("ratings")
    assert friends.relation_of == "member_no"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        # no dot: not a qualified name
        ("title_id", "dataset reelix: field 'title_id' must be written collection.field"),
        # a misspelt collection: the nearest is suggested
        (
            "watch_event.title_id",
            "declares no collection 'watch_event'; did you mean 'watch_events'",
        ),
        # a misspelt field
        ("watch_events.titel_id", "collection watch_events declares no field 'titel_id'; did you"),
        # a field of the table that is not declared
        ("watch_events.secret_note", "collection watch_events declares no field 'secret_note'"),
    ],
)
def test_fields_by_name(name: str, message: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse(DATASET).field(name)
    assert message in str(raised.value)


def edit(old: str, new: str) -> str:
    assert old in DATASET, old
    return DATASET.replace(old, new, 1)


ROWS = [
    # (document, the one error expected)
    pytest.param(
        edit("    person: member_id\n", "    persn: member_id\n"),
        ["reelix.yaml:7: collections[0].persn: unknown key; did you mean 'person'?"],
        id="misspelt key",
    ),
    pytest.param(
        edit("category: user.behavior.media_consumption}", "category: user.behavior.media}"),
        [
            (
                "reelix.yaml:11: collections[0].fields[2].category: unknown data category "
                "'user.behavior.media'; did you mean"
            )
        ],
        id="unknown category, nearest suggested",
    ),
    pytest.param(
        edit("{name: title_id,", "{name: 'title_id; DROP TABLE x',"),
        [
            (
                "reelix.yaml:11: collections[0].fields[2].name: 'title_id; DROP TABLE x' is not "
                "a plain SQL identifier"
            )
        ],
        id="a name that is not an identifier",
    ),
    pytest.param(
        edit("  - name: ratings\n", "  - name: 2ratings\n"),
        ["reelix.yaml:23: collections[2].name: '2ratings' is not a plain SQL identifier"],
        id="an identifier may not start with a digit",
    ),
    pytest.param(
        edit(
            "    person: member_no\n",
            "    person: member_no\n    group: {field: a, members: b,"
            " member_group: c, member_person: d}\n",
        ),
        ["reelix.yaml:23: collections[2]: a collection names at most one of person"],
        id="both person and group",
    ),
    pytest.param(
        edit("    person: member_no\n", ""),
        [
            (
                "reelix.yaml:23: collections[2]: a collection about no person (neither person "
                "nor group) may hold no personal data, but member_no, stars is under 'user'"
            )
        ],
        id="about no person, yet holding personal data",
    ),
    pytest.param(
        edit("    person: member_no\n", "    person: member\n"),
        ["reelix.yaml:23: collections[2]: the person 'member' must be one of the declared fields"],
        id="person field not declared",
    ),
    pytest.param(
        edit("{field: thread_id,", "{field: thread,"),
        ["reelix.yaml:14: collections[1]: the group field 'thread' must be one of the declared"],
        id="group field not declared",
    ),
    pytest.param(
        edit("member_person: person_id}", "member_persn: person_id}"),
        [
            "reelix.yaml:15: collections[1].group.member_person: required and missing",
            (
                "reelix.yaml:16: collections[1].group.member_persn: unknown key; did you mean "
                "'member_person'?"
            ),
        ],
        id="misspelt key of the group",
    ),
    pytest.param(
        edit("{name: stars,", "{name: member_no,"),
        ["reelix.yaml:23: collections[2]: field names must be unique; repeated: member_no"],
        id="a field declared twice",
    ),
    pytest.param(
        edit("  - name: ratings\n", "  - name: messages\n"),
        ["reelix.yaml:4: collections: collection names must be unique; repeated: messages"],
        id="a collection declared twice",
    ),
    pytest.param(
        edit("    person: member_no\n", "    person: member_no\n    relation_of: owner\n"),
        ["reelix.yaml:23: collections[2]: relation_of 'owner' must be one of the declared fields"],
        id="relation_of names no declared field",
    ),
    pytest.param(
        edit("    person: member_no\n", "    person: member_no\n    relation_of: stars\n"),
        [
            (
                "reelix.yaml:23: collections[2]: relation_of 'stars' must hold a person's id "
                "(user.unique_id), not user.behavior.media_consumption"
            )
        ],
        id="relation_of is not a person's id",
    ),
    pytest.param(
        edit(
            "            member_person: person_id}\n",
            "            member_person: person_id}\n    relation_of: sender\n",
        ),
        ["reelix.yaml:14: collections[1]: relation_of is for a collection about one person"],
        id="relation_of on rows about a group",
    ),
    pytest.param(
        edit("dataset: reelix\n", ""),
        ["reelix.yaml:1: dataset: required and missing"],
        id="no id",
    ),
    pytest.param(
        edit("party: reelix\n", "party: reelix\nowner: me\n"),
        ["reelix.yaml:3: owner: unknown key; known keys: dataset, party, description, collections"],
        id="unknown top-level key",
    ),
    pytest.param(
        edit(
            "    fields:\n      - {name: member_no",
            "    fields: []\n    x:\n      - {name: member_no",
        ),
        [
            "reelix.yaml:25: collections[2].fields: Tuple should have at least 1 item",
            "reelix.yaml:26: collections[2].x: unknown key; known keys: name, description",
        ],
        id="no fields",
    ),
]


@pytest.mark.parametrize(("text", "expected"), ROWS)
def test_errors_point_to_file_line_and_field(text: str, expected: list[str]) -> None:
    with pytest.raises(DatasetFormatError) as raised:
        parse(text, source="reelix.yaml")
    problems = raised.value.problems
    assert len(problems) == len(expected), problems
    for problem, start in zip(sorted(problems), sorted(expected), strict=True):
        assert problem.startswith(start), problem
    assert isinstance(raised.value, InvalidInput)


def test_invalid_yaml_and_a_document_that_is_not_a_mapping() -> None:
    with pytest.raises(DatasetFormatError) as raised:
        parse("dataset: x\n  party: [\n", source="bad.yaml")
    assert raised.value.problems[0].startswith("bad.yaml:2: not valid YAML")
    with pytest.raises(DatasetFormatError, match=r"list\.yaml:1: a dataset is a mapping"):
        parse("- a\n- b\n", source="list.yaml")


def test_load_reads_a_file_and_names_it(tmp_path: Path) -> None:
    good = tmp_path / "reelix.yaml"
    good.write_text(DATASET, encoding="utf-8")
    assert load(good).id == "reelix"
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("{name: title_id,", "{name: title-id,"), encoding="utf-8")
    with pytest.raises(
        DatasetFormatError, match=rf"{bad}:11: collections\[0\]\.fields\[2\]\.name: 'title-id'"
    ):
        load(bad)
    with pytest.raises(InvalidInput, match="cannot read dataset declaration"):
        load(tmp_path / "missing.yaml")
