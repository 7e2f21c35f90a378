"""The dataset declarations describe the generated databases field by field."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from accord import taxonomy
from accord.scenario.generate import Written


def declaration(party: str) -> dict[str, Any]:
    text = (resources.files("accord.scenario") / "datasets" / f"{party}.yaml").read_text()
    loaded: dict[str, Any] = YAML(typ="safe").load(text)
    return loaded


def columns(path: Path) -> dict[str, set[str]]:
    with closing(sqlite3.connect(path)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            table: {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            for table in tables
            if not table.startswith("sqlite_")
        }


@pytest.mark.integration
@pytest.mark.parametrize("party", ["chirp", "reelix"])
def test_every_table_and_column_is_declared_and_every_declared_field_exists(
    scenario: Written, party: str
) -> None:
    dataset = declaration(party)
    assert dataset["dataset"] == dataset["party"] == party
    actual = columns(getattr(scenario, party))
    declared = {c["name"]: {f["name"] for f in c["fields"]} for c in dataset["collections"]}
    assert declared == actual


@pytest.mark.unit
@pytest.mark.parametrize("party", ["chirp", "reelix"])
def test_every_category_is_a_taxonomy_key(party: str) -> None:
    for collection in declaration(party)["collections"]:
        for field in collection["fields"]:
            taxonomy.validate(taxonomy.Kind.CATEGORY, field["category"])


@pytest.mark.unit
@pytest.mark.parametrize("party", ["chirp", "reelix"])
def test_each_collection_says_whom_its_rows_are_about(party: str) -> None:
    collections = {c["name"]: c for c in declaration(party)["collections"]}
    for name, collection in collections.items():
        fields = {f["name"] for f in collection["fields"]}
        assert not ("person" in collection and "group" in collection), name
        if "person" in collection:
            assert collection["person"] in fields, name
        elif "group" in collection:
            group = collection["group"]
            members = {f["name"] for f in collections[group["members"]]["fields"]}
            assert group["field"] in fields, name
            assert {group["member_group"], group["member_person"]} <= members, name
        else:
            assert name == "titles"  # the catalogue is about no one


@pytest.mark.unit
def test_linked_accounts_and_watch_events_carry_the_categories_the_flows_ask_for() -> None:
    reelix = {c["name"]: c for c in declaration("reelix")["collections"]}
    categories = {f["name"]: f["category"] for f in reelix["linked_accounts"]["fields"]}
    assert categories["chirp_person_id"] == "user.account.linked"
    watch = {f["category"] for f in reelix["watch_events"]["fields"]}
    assert taxonomy.MEDIA_CONSUMPTION in watch
    chirp = {c["name"]: c for c in declaration("chirp")["collections"]}
    bodies = {f["name"]: f["category"] for f in chirp["messages"]["fields"]}
    assert bodies["body"] == taxonomy.PRIVATE_CONTENT
