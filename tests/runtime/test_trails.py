"""Run trails in flow_runs, on PostgreSQL and on SQLite: each event's entries land in the upsert that
writes the run's row, applying an event twice (or an older one after a newer) changes nothing, the
trail keeps its last 500 entries and counts the rest."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from flow_engine.adapters.db import FlowRunRow
from flow_engine.adapters.store import Applied, apply_outcomes, load_contacts
from flow_engine.core.conversation import handle
from flow_engine.core.graph import parse_flow
from flow_engine.core.inbound import Message
from flow_engine.core.outcome import Contact, Outcome, RunRecord
from flow_engine.core.trail import ordered
from tests.runtime.conftest import store_engine


@pytest.fixture(params=["postgresql", "sqlite"])
def engine(request: pytest.FixtureRequest, database_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = store_engine(request.param, database_url, tmp_path)
    yield engine
    engine.dispose()


def steps(first: int, count: int, end: str | None = None) -> tuple[dict[str, Any], ...]:
    made = tuple({"s": f"p:{n}", "t": 1000 + n, "k": "send_text"} for n in range(first, first + count))
    return (*made[:-1], {**made[-1], "end": end}) if end else made


def record(first: int, count: int, status: str = "running", end: str = "waiting") -> Outcome:
    run = RunRecord("run-1", "flow-1", 1, status, f"p:{first + count - 1}", {},  # type: ignore[arg-type]
                    steps(first, count, end), first)
    return Outcome(event_key=f"e{first}", run=run)


def apply(engine: Engine, *outcomes: Outcome) -> None:
    contacts = {("acme", p): s for p, s in load_contacts(engine, "acme", ["5215550001"]).items()}
    apply_outcomes(engine, [Applied("acme", "ch1", "5215550001", o) for o in outcomes], contacts)


def stored(engine: Engine) -> tuple[list[tuple[int, str, str | None]], int]:
    with engine.connect() as conn:
        row = conn.execute(select(FlowRunRow.trail, FlowRunRow.trail_count)).one()
    return [(n, e["s"], e.get("end")) for n, e in ordered(row.trail)], row.trail_count


def test_each_event_appends_its_entries_and_applying_twice_changes_nothing(engine: Engine) -> None:
    apply(engine, record(0, 3))
    apply(engine, record(3, 2, "completed", "completed"))
    apply(engine, record(3, 2, "completed", "completed"))  # a replay of the last event
    apply(engine, record(0, 3))  # a replay of an older one: the row already holds more
    trail, count = stored(engine)
    assert trail == [(0, "p:0", None), (1, "p:1", None), (2, "p:2", "waiting"), (3, "p:3", None),
                     (4, "p:4", "completed")]
    assert count == 5


def test_a_replayed_batch_that_overlaps_what_was_written_adds_only_the_new_entries(engine: Engine) -> None:
    apply(engine, record(0, 3))  # written, then the worker died before its Redis commit
    apply(engine, record(0, 3), record(3, 2, "completed", "completed"))  # the next holder's batch
    trail, count = stored(engine)
    assert [n for n, _, _ in trail] == [0, 1, 2, 3, 4] and count == 5


def test_the_trail_keeps_its_last_500_entries_and_counts_the_dropped_ones(engine: Engine) -> None:
    apply(engine, record(0, 300))
    apply(engine, record(300, 300))
    trail, count = stored(engine)
    assert (len(trail), trail[0][0], trail[-1][0], count) == (500, 100, 599, 600)
    apply(engine, record(600, 700, "failed", "loop-limit"))  # one event of 700 steps
    trail, count = stored(engine)
    assert (len(trail), trail[0][0], trail[-1], count) == (500, 800, (1299, "p:1299", "loop-limit"), 1300)
    apply(engine, record(300, 300))  # old news
    assert stored(engine)[1] == 1300 and len(stored(engine)[0]) == 500


def test_a_looping_flow_run_through_the_interpreter_is_bounded_with_its_count(engine: Engine) -> None:
    """A menu that loops through a 1 ms delay 300 times: 3 entries per lap (resume, send, goto...)."""
    flow = parse_flow({"nodes": [], "paths": {"path_default": [
        {"type": "action", "action": "send_text", "text": "tick"},
        {"type": "delay", "ms": 1}, {"type": "goto", "path": "path_default"}]}}, flow_id="loop", version=1)
    outcomes = handle(Message("m1/0", "acme", "ch1", "5215550001", "hola"), None, [], Contact("5215550001"), 0,
                      _Flows(flow))
    wait = outcomes[0].wait_after
    every = list(outcomes)
    for lap in range(300):
        assert wait is not None
        timer = every[-1].timers_add[0]
        every += handle(timer.resume(), wait, [], Contact("5215550001"), 10 + lap, _Flows(flow))
        wait = every[-1].wait_after
    for first in range(0, len(every), 50):  # batches of 50 events
        apply(engine, *every[first:first + 50])
    trail, count = stored(engine)
    assert count == 1 + 2 + 300 * 4  # start, send, delay; then per lap: resume, goto, send, delay
    assert len(trail) == 500 and trail[0][0] == count - 500
    assert trail[-1] == (count - 1, "path_default:1", "waiting")


class _Flows:
    def __init__(self, flow: Any) -> None:
        self.flow = flow

    def active(self, org_id: str) -> Any:
        return self.flow

    def by_id(self, flow_id: str) -> Any:
        return self.flow


def test_stats_count_what_the_runs_did_on_both_databases(engine: Engine) -> None:
    """60 conversations of the restaurant booking flow (bench/trails.py's ten scripts: bookings,
    re-prompts, timeouts, silence...) written as the worker writes them; the database's aggregates
    equal the counts taken from the outcomes themselves."""
    from bench.trails import conversations, write
    from flow_engine.adapters.runs import RunFilter, flow_stats
    from flow_engine.core.stats import STOPPED

    played = conversations("booking", 60, org="acme")
    write(engine, played, org="acme")
    final: dict[str, RunRecord] = {}
    entries: dict[str, list[Mapping[str, Any]]] = {}
    for _phone, outcome in played:
        for run in (outcome.ended, outcome.run):
            if run is not None:
                final[run.id] = run
                entries.setdefault(run.id, []).extend(run.trail)
    stats = flow_stats(engine, RunFilter("acme"))
    statuses: dict[str, int] = {}
    for run in final.values():
        statuses[run.status] = statuses.get(run.status, 0) + 1
    assert dict(stats.by_status) == statuses and stats.runs == 60
    assert set(statuses) == {"completed", "running"} and statuses["completed"] == 24  # 4 scripts in 10 book
    for where, step in stats.steps.items():
        assert step.reached == sum(1 for trail in entries.values() if any(e["s"] == where for e in trail)), where
        assert step.passes == sum(1 for trail in entries.values() for e in trail if e["s"] == where), where
        for name in STOPPED:
            status = "running" if name == "waiting" else name
            assert step.stopped[name] == sum(1 for run in final.values()
                                             if run.status == status and (run.last_step or "start") == where)
    assert stats.steps["start"].reached == 60 and stats.steps["menu:1"].reached == 60
    assert filtered_runs(engine, "completed") == 24


def filtered_runs(engine: Engine, status: str) -> int:
    from flow_engine.adapters.runs import RunFilter, flow_stats

    return flow_stats(engine, RunFilter("acme", status=status)).runs
