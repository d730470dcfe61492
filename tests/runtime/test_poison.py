"""A poison event: it fails every time (a real database trigger refuses it). It is retried, then
dead-lettered, and the events behind it in its lane go on, in order."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bridge.routing import lane_of
from flow_engine.adapters.keys import DLQ
from flow_engine.adapters.scripts import connect
from flow_engine.settings import Settings
from tests.devstack import Stack
from tests.runtime.conftest import new_org


@pytest.fixture(scope="module")
def poisoned(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A real database that refuses every run of one contact (a trigger), and a working stack."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(text("""
            CREATE FUNCTION refuse_poison() RETURNS trigger AS $$
            BEGIN
              IF NEW.contact = '5215550666' THEN RAISE EXCEPTION 'contact 5215550666 is refused'; END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql;
            CREATE TRIGGER refuse_poison BEFORE INSERT ON flow_runs FOR EACH ROW EXECUTE FUNCTION refuse_poison();
        """))
    engine.dispose()
    connect(redis_url).flushdb()
    s = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"),
              env={"FLOW_ENGINE_MAX_RETRIES": "2", "FLOW_ENGINE_RETRY_BACKOFF_MS": "50"})
    s.start()
    yield s
    s.stop()


def test_a_poison_event_is_dead_lettered_and_its_lane_goes_on_in_order(poisoned: Stack) -> None:
    org = new_org()
    poisoned.load_flow(org, {"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "eco {{message.text}}"}]}})
    lane = lane_of(org, "ch1", "5215550666", Settings.lanes)
    neighbour = next(p for n in range(100_000) if lane_of(org, "ch1", p := f"52156{n:05d}", Settings.lanes) == lane)
    ids = [poisoned.send(org, neighbour, "a1"), poisoned.send(org, "5215550666", "p1"),
           poisoned.send(org, neighbour, "a2"), poisoned.send(org, neighbour, "a3")]
    poisoned.wait_outbox(org, 3, timeout_s=30)
    poisoned.settled()
    assert [(e["to"], e["text"]) for e in poisoned.outbox(org)] == [
        (neighbour, "eco a1"), (neighbour, "eco a2"), (neighbour, "eco a3")]
    dlq = poisoned.stream(DLQ, org)
    assert [(e["source_id"], e["error"], e["retries"]) for e in dlq] == [(ids[1], "max-retries-exceeded", "2")]
    assert "contact 5215550666 is refused" in dlq[0]["error_detail"]
