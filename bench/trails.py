"""Run trails: `stats` on 10,000 runs (the bar: under a second on PostgreSQL), and what trails add to
the database writes of the worker.

- `stats`: a fresh PostgreSQL database (BENCH_PG_URL names the server) gets BENCH_STATS_RUNS runs
  (default 10,000) of the restaurant booking flow, written as the worker writes them: conversations
  played by the production interpreter (ten scripts: bookings, a declined menu, hours, silence,
  timeouts, re-prompts...), their outcomes applied by `apply_outcomes` in batches of 400 events. Then
  `flow_stats` (the three aggregate queries of `flow-engine stats --org O`) is timed, median of
  BENCH_ROUNDS (default 5), and the plan of each query is written to bench/results/stats_plan.txt
  (EXPLAIN ANALYZE). Also on SQLite, for comparison.
- `trail_writes`: the same events applied in batches of 400 to two fresh tables, with their trails
  and with the trails left out, alternated over BENCH_ROUNDS rounds: µs of database time per event
  both ways (the upsert statement is the same; the difference is the trail's data and its merge).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from flow_engine.adapters.db import make_engine
from flow_engine.adapters.migrate import upgrade
from flow_engine.adapters.runs import RunFilter, explain, flow_stats
from flow_engine.adapters.store import Applied, StoredContact, apply_outcomes, store_flow
from flow_engine.core.conversation import OneFlow, handle
from flow_engine.core.graph import parse_flow
from flow_engine.core.inbound import Event, Message
from flow_engine.core.outcome import Contact, Outcome, Timer, WaitState

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = Path(__file__).resolve().parent / "results"
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
BATCH = 400
TARGET_S = 1.0
SCRIPTS = [  # what each contact says (wait:S advances the clock by S seconds)
    ["hola", "1", "somos 4", "24/12", "ana@example.com"],
    ["hola", "1", "somos 20", "somos 6", "el 3/1", "no tengo", "luis@example.com"],
    ["hola", "2"],
    ["hola", "3"],
    ["hola", "no sé", "1", "somos 2"],
    ["hola"],
    ["hola", "wait:400"],
    ["hola", "1", "somos 3", "wait:400"],
    ["hola", "1", "dos", "somos 2", "12/5"],
    ["buenas", "1", "4", "1/1", "x@y.z"],
]


@contextmanager
def pg_database() -> Iterator[str]:
    name = f"fe_bench_trails_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def conversations(flow_id: str, runs: int, org: str = "bench") -> list[tuple[str, Outcome]]:
    """(contact, outcome) of every event of `runs` conversations, in the order a worker applies them."""
    import json

    graph = json.loads((ROOT / "examples" / "flows" / "restaurant_booking.json").read_text())
    flows = OneFlow(parse_flow(graph, flow_id=flow_id, version=1))
    played: list[tuple[str, Outcome]] = []
    for n in range(runs):
        phone, now_ms = f"52155{n:07d}", 1_764_000_000_000 + n * 1000
        wait: WaitState | None = None
        timers: dict[str, Timer] = {}
        for said, step in enumerate(SCRIPTS[n % len(SCRIPTS)]):
            events: list[Event]
            if step.startswith("wait:"):
                now_ms += int(float(step[5:]) * 1000)
                events = [t.resume() for t in sorted(timers.values(), key=lambda t: t.due_ms) if t.due_ms <= now_ms]
            else:
                now_ms += 5000
                events = [Message(f"{phone}-{said}/0", org, "ch1", phone, step)]
            for event in events:
                for outcome in handle(event, wait, [], Contact(phone), now_ms, flows):
                    wait = outcome.wait_after
                    for timer in outcome.timers_cancel:
                        timers.pop(timer.token, None)
                    timers.update((t.token, t) for t in outcome.timers_add)
                    played.append((phone, outcome))
    return played


def write(engine: Engine, played: list[tuple[str, Outcome]], org: str = "bench") -> float:
    """Apply the outcomes in batches as the worker does; seconds spent."""
    started = time.perf_counter()
    for first in range(0, len(played), BATCH):
        batch = played[first:first + BATCH]
        contacts = {(org, phone): StoredContact(f"c-{phone}", Contact(phone)) for phone, _ in batch}
        apply_outcomes(engine, [Applied(org, "ch1", phone, outcome) for phone, outcome in batch], contacts)
    return time.perf_counter() - started


def _stats_on(url: str, runs: int, rounds: int) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        flow_id, _version, _stored = store_flow(engine, "bench", {"nodes": [], "paths": {}}, name="booking",
                                                activate=True, created_by="bench")
        played = conversations(flow_id, runs)
        write_s = write(engine, played)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE flow_runs"))
        chosen = RunFilter("bench")
        timings, result = [], None
        for _ in range(rounds):
            started = time.perf_counter()
            result = flow_stats(engine, chosen)
            timings.append(time.perf_counter() - started)
        assert result is not None and result.runs == runs, (result.runs if result else None, runs)
        entries = sum(step.passes for step in result.steps.values())
        return {"runs": runs, "events": len(played), "entries": entries, "write_s": round(write_s, 2),
                "stats_s": [round(t, 3) for t in timings], "median_s": round(statistics.median(timings), 3),
                "by_status": dict(result.by_status), "plan": explain(engine, chosen)}
    finally:
        engine.dispose()


def run_stats() -> dict[str, Any]:
    runs = int(os.environ.get("BENCH_STATS_RUNS", "10000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    with pg_database() as url:
        upgrade(url)
        pg = _stats_on(url, runs, rounds)
    sqlite_path = RESULTS_DIR / f"stats-{uuid.uuid4().hex[:6]}.db"
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    try:
        upgrade(f"sqlite:///{sqlite_path}")
        lite = _stats_on(f"sqlite:///{sqlite_path}", runs, rounds)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
    (RESULTS_DIR / "stats_plan.txt").write_text("PostgreSQL\n" + "\n".join(pg.pop("plan")) + "\n\nSQLite\n"
                                                + "\n".join(lite.pop("plan")) + "\n")
    return {
        "summary": f"stats: {runs:,} runs ({pg['entries']:,} trail entries) on PostgreSQL in {pg['median_s']} s "
                   f"(median of {rounds}; SQLite {lite['median_s']} s); plan in bench/results/stats_plan.txt",
        "passed": pg["median_s"] < TARGET_S, "postgresql": pg, "sqlite": lite,
    }


def run_trail_writes() -> dict[str, Any]:
    runs = int(os.environ.get("BENCH_STATS_RUNS", "10000"))
    rounds = int(os.environ.get("BENCH_ROUNDS", "5"))
    played = conversations("f", runs)
    bare = [(phone, replace(o, run=replace(o.run, trail=(), trail_from=0) if o.run else None,
                            ended=replace(o.ended, trail=(), trail_from=0) if o.ended else None))
            for phone, o in played]
    with_trail: list[float] = []
    without: list[float] = []
    with pg_database() as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            for _ in range(rounds):
                for chosen, times in ((played, with_trail), (bare, without)):
                    with engine.begin() as conn:
                        conn.execute(text("TRUNCATE flow_runs"))
                    times.append(write(engine, chosen) / len(chosen) * 1e6)
        finally:
            engine.dispose()
    on, off = statistics.median(with_trail), statistics.median(without)
    return {
        "summary": f"trail writes: {on:.0f} µs of database time per event with trails, {off:.0f} µs without "
                   f"({(on - off) / off:+.1%}; {len(played):,} events in batches of {BATCH}, median of {rounds})",
        "passed": True, "with_trail_us": [round(t) for t in with_trail], "without_us": [round(t) for t in without],
    }
