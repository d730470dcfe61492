"""The database side on PostgreSQL and on the embedded SQLite default: idempotent runs, attribute
merges that never lose another key, contacts found by wa_id or phone, the flow cache."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from flow_engine.adapters.store import Applied, FlowCache, apply_outcomes, load_contacts, store_flow
from flow_engine.core.outcome import AttributeWrite, Outcome, RunRecord, TagWrite
from tests.runtime.conftest import graph_of, store_engine


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = store_engine(request.param, database_url, tmp_path)
    yield engine
    engine.dispose()


def run_outcome(status: str, last_step: str, *writes: tuple[str, object], name: str | None = None) -> Outcome:
    return Outcome(
        event_key="k",
        effects=tuple(AttributeWrite(k, v) for k, v in writes),
        contact_name=name,
        run=RunRecord("run-1", "flow-1", 2, status, last_step, {"intent": "greeting"}),  # type: ignore[arg-type]
    )


def apply(engine: Engine, *outcomes: Outcome) -> None:
    contacts = {("acme", phone): stored for phone, stored in load_contacts(engine, "acme", ["5215550001"]).items()}
    apply_outcomes(engine, [Applied("acme", "ch1", "5215550001", o) for o in outcomes], contacts)


def test_runs_are_upserted_by_id_and_applying_twice_changes_nothing(engine: Engine) -> None:
    apply(engine, run_outcome("running", "p:1"))
    apply(engine, run_outcome("completed", "p:3"))
    apply(engine, run_outcome("completed", "p:3"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, org_id, flow_id, flow_version, contact, channel_id, status, last_step, "
                                 "created_at < updated_at FROM flow_runs")).all()
    assert [tuple(r) for r in rows] == [("run-1", "acme", "flow-1", 2, "5215550001", "ch1", "completed", "p:3", True)]


def test_set_attribute_creates_the_contact_and_merges_without_losing_other_keys(engine: Engine) -> None:
    apply(engine, run_outcome("running", "p:0", ("tier", "vip"), ("n", 1), name="Ana"))
    with engine.begin() as conn:  # another service writes another key meanwhile
        if engine.dialect.name == "postgresql":
            conn.execute(text("UPDATE contacts SET attributes = attributes || '{\"crm\": \"x\"}'::jsonb"))
        else:
            conn.execute(text("UPDATE contacts SET attributes = json_set(attributes, '$.crm', 'x')"))
    apply(engine, run_outcome("running", "p:1", ("n", 2), ("tier", None), ("list", [1, "a"])))
    stored = load_contacts(engine, "acme", ["5215550001"])["5215550001"]
    assert stored.id is not None
    assert (stored.contact.name, dict(stored.contact.attributes)) == (
        "Ana", {"tier": None, "n": 2, "crm": "x", "list": [1, "a"]})
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM contacts")).scalar() == 1


def tags_outcome(*changes: tuple[str, bool] | tuple[str, object, str]) -> Outcome:
    """Tag changes (tag, present) and attribute writes (key, value, "set"), in order."""
    effects = tuple(TagWrite(str(c[0]), bool(c[1])) if len(c) == 2 else AttributeWrite(str(c[0]), c[1])
                    for c in changes)
    return Outcome(event_key="k", effects=effects)


def _attributes(engine: Engine) -> dict[str, object]:
    return dict(load_contacts(engine, "acme", ["5215550001"])["5215550001"].contact.attributes)


def test_tags_are_a_sorted_list_without_duplicates_merged_with_tags_written_meanwhile(engine: Engine) -> None:
    apply(engine, tags_outcome(("vip", True), ("vip", True), ("lead", True)), run_outcome("running", "p:0", ("n", 1)))
    assert _attributes(engine) == {"tags": ["lead", "vip"], "n": 1}
    others = '["vip", "crm", "vip", "Zeta", "é"]'
    with engine.begin() as conn:  # another service tags the contact meanwhile (and leaves a duplicate)
        if engine.dialect.name == "postgresql":
            conn.execute(text("UPDATE contacts SET attributes = jsonb_set(attributes, '{tags}', CAST(:tags AS jsonb))"),
                         {"tags": others})
        else:
            conn.execute(text("UPDATE contacts SET attributes = json_set(attributes, '$.tags', json(:tags))"),
                         {"tags": others})
    apply(engine, tags_outcome(("lead", False), ("nuevo", True), ("nunca", False)))
    apply(engine, tags_outcome(("lead", False), ("nuevo", True), ("nunca", False)))  # a replay changes nothing
    assert _attributes(engine) == {"tags": ["Zeta", "crm", "nuevo", "vip", "é"], "n": 1}  # code point order


def test_a_tag_change_after_a_write_of_the_whole_list_in_one_batch_applies_on_top_of_it(engine: Engine) -> None:
    apply(engine, tags_outcome(("old", True)))
    apply(engine, tags_outcome(("x", True), ("tags", ["b", "a"], "set"), ("c", True), ("a", False)))
    assert _attributes(engine) == {"tags": ["b", "c"]}


def test_attribute_keys_with_quotes_and_dots_are_their_own_keys(engine: Engine) -> None:
    apply(engine, run_outcome("running", "p:0", ("ab", 1), ("a.b", 2)))
    apply(engine, run_outcome("running", "p:1", ('a"b', 3), ('"', 4), ("a[0]", 5)))
    stored = load_contacts(engine, "acme", ["5215550001"])["5215550001"]
    assert dict(stored.contact.attributes) == {"ab": 1, "a.b": 2, 'a"b': 3, '"': 4, "a[0]": 5}


def test_a_run_id_of_another_org_never_changes_that_orgs_row(engine: Engine) -> None:
    apply(engine, run_outcome("running", "p:1"))  # org acme's run-1
    intruder = {("evil", "5215550001"): load_contacts(engine, "evil", ["5215550001"])["5215550001"]}
    apply_outcomes(engine, [Applied("evil", "ch1", "5215550001", run_outcome("failed", "x:9"))], intruder)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT org_id, status, last_step FROM flow_runs")).all()
    assert [tuple(r) for r in rows] == [("acme", "running", "p:1")]


def test_contacts_are_found_by_wa_id_or_phone_per_org(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO contacts (id, org_id, wa_id, phone, name, attributes, created_at, updated_at) "
                          "VALUES ('c1', 'acme', '5215550001', NULL, 'Ana', '{\"a\": 1}', :t, :t), "
                          "('c2', 'acme', NULL, '5215550002', 'Luis', '{}', :t, :t), "
                          "('c3', 'other', '5215550001', NULL, 'Otra', '{}', :t, :t)"), {"t": "2026-01-01T00:00:00Z"})
    found = load_contacts(engine, "acme", ["5215550001", "5215550002", "5215550003"])
    assert {p: (s.id, s.contact.name, dict(s.contact.attributes)) for p, s in found.items()} == {
        "5215550001": ("c1", "Ana", {"a": 1}), "5215550002": ("c2", "Luis", {}), "5215550003": (None, "", {})}


def test_the_active_flow_is_the_highest_active_version_and_changes_within_the_cache_time(engine: Engine) -> None:
    cache = FlowCache(engine, ttl_s=0.2)
    assert cache.active("acme") is None
    first, _, _ = store_flow(engine, "acme", graph_of("shop_demo"), name="shop", activate=True, created_by="t")
    time.sleep(0.25)
    assert (cache.active("acme") or pytest.fail()).id == first
    second, version, _ = store_flow(engine, "acme", graph_of("verification_code"), name="shop", activate=True,
                                 created_by="t")
    assert version == 2
    assert (cache.active("acme") or pytest.fail()).id == first  # cached
    time.sleep(0.25)
    assert (cache.active("acme") or pytest.fail()).id == second
    assert (cache.by_id(first) or pytest.fail()).version == 1  # a paused run still finds its own flow
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM flows WHERE id = :id"), {"id": first})
    time.sleep(0.25)
    assert cache.by_id(first) is None
