"""Run trails in the pure core: the entries each event adds (numbered on from the run's wait state),
their stored form, the timeline `runs show` prints, and the funnel `stats` sums."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click
import pytest

from flow_engine.cli.runs import parse_since
from flow_engine.core.graph import parse_flow
from flow_engine.core.outcome import Contact
from flow_engine.core.simulator import Simulator
from flow_engine.core.stats import build, edge_of, table
from flow_engine.core.trail import decode, encode, numbered, ordered, timeline

FLOW = parse_flow({"nodes": [{"type": "intent", "map": {"default": "main"}}], "interrupt": ["menu"], "paths": {
    "main": [{"type": "action", "action": "send_text", "text": "¿Sí o no?"},
             {"type": "wait_for_reply", "pattern": "^(si|no)$", "timeout_seconds": 60, "timeout_path": "gone"},
             {"type": "branch", "cases": [{"equals": "si", "path": "yes"}]},
             {"type": "action", "action": "send_text", "text": "Vale"}],
    "yes": [{"type": "delay", "seconds": 2}],
    "gone": [{"type": "end"}]}}, flow_id="f1", version=1)


def simulated(*steps: str) -> list[tuple[str, int, list[dict[str, Any]]]]:
    """(status, trail_from, entries) of each run record, in order."""
    sim = Simulator(FLOW, org_id="acme", channel_id="ch1", contact=Contact("5215550001"))
    records: list[tuple[str, int, list[dict[str, Any]]]] = []
    for step in steps:
        verb, _, arg = step.partition(":")
        for happening in sim.say(arg) if verb == "say" else sim.advance(float(arg)):
            for run in (happening.outcome.ended, happening.outcome.run):
                if run is not None:
                    records.append((run.status, run.trail_from, [dict(e) for e in run.trail]))
    return records


def test_each_event_adds_its_steps_numbered_on_from_the_run_so_far() -> None:
    assert simulated("say:hola", "wait:1", "say:si", "wait:2") == [
        ("running", 0, [{"s": "start", "t": 0, "k": "start", "via": "greeting", "to": "main"},
                        {"s": "main:0", "t": 0, "k": "send_text"},
                        {"s": "main:1", "t": 0, "k": "wait_for_reply", "end": "waiting"}]),
        ("running", 3, [{"s": "main:1", "t": 1000, "k": "resume", "via": "reply"},
                        {"s": "main:2", "t": 1000, "k": "branch", "via": 'equals "si"', "to": "yes"},
                        {"s": "yes:0", "t": 1000, "k": "delay", "end": "waiting"}]),
        ("completed", 6, [{"s": "yes:0", "t": 3000, "k": "resume", "via": "delay", "end": "completed"}]),
    ]


def test_timeouts_expiry_and_interrupts_say_what_ended_the_wait() -> None:
    timed_out = simulated("say:hola", "wait:60")
    assert timed_out[-1] == ("completed", 3, [{"s": "main:1", "t": 60000, "k": "resume", "via": "timeout"},
                                              {"s": "gone:0", "t": 60000, "k": "end", "end": "completed"}])
    interrupted = simulated("say:hola", "say:menu")
    assert interrupted[1] == ("interrupted", 3, [{"s": "main:1", "t": 0, "k": "resume", "via": "interrupt",
                                                  "end": "interrupted"}])
    started = interrupted[2]  # the new run starts its own trail at 0 ("menu" has the intent default)
    assert started[:2] == ("running", 0) and started[2][0] == {"s": "start", "t": 0, "k": "start", "via": "default",
                                                               "to": "main"}


def test_a_stored_entry_is_one_string_and_reads_back_whole() -> None:
    entry = {"s": "main:2", "t": 1764755472000, "k": "branch", "via": 'matches "a\x1fb"', "to": "yes"}
    assert encode({"s": "a:1", "t": 5, "k": "delay", "end": "waiting"}) == "a:1\x1f5\x1fdelay\x1f\x1f\x1fwaiting"
    assert encode({"s": "a:1", "t": 5, "k": "send_text"}) == "a:1\x1f5\x1fsend_text"  # empty fields at the end left out
    assert decode("a:1\x1f5\x1fsend_text\x1f\x1f\x1f") == decode("a:1\x1f5\x1fsend_text")  # as stored before
    assert decode(encode(entry)) == {**entry, "via": 'matches "a\u241fb"'}  # a separator inside is replaced
    assert list(numbered(498, [{"s": "a:0", "t": 1, "k": "goto"}] * 3)) == ["498", "499", "500"]
    assert list(numbered(0, [{"s": "a:0", "t": 1, "k": "goto"}] * 502))[:2] == ["2", "3"]  # the last 500


def test_the_timeline_is_timed_from_the_first_entry_kept_and_says_what_was_dropped() -> None:
    stored = {"10": encode({"s": "a:1", "t": 2500, "k": "resume", "via": "delay"}),
              "9": encode({"s": "a:0", "t": 1000, "k": "delay", "end": "waiting"}),
              "11": encode({"s": "a:2", "t": 2500, "k": "end", "end": "completed"})}
    assert [n for n, _ in ordered(stored)] == [9, 10, 11]
    assert timeline(stored, 12) == [
        "(the first 9 entries are not kept: a trail keeps the last 500)",
        "[    0.000s] a:0              delay  … waiting",
        "[    1.500s] a:1              ↩ delay",
        "[    1.500s] a:2              end  ■ completed",
    ]
    assert timeline(None, 0) == []


def test_stats_sum_runs_by_status_and_steps() -> None:
    stats = build([("completed", "a:2", 3), ("running", "a:0", 1), ("failed", "", 1)],
                  [("start", "start", "greeting", "a", None, 4, 4), ("a:0", "delay", None, None, "waiting", 4, 4),
                   ("a:0", "resume", "delay", None, None, 3, 0), ("a:1", "goto", "goto", "a", None, 2, 2),
                   ("a:2", "end", None, None, "completed", 3, 3), ("start", "start", None, None, "flow-error", 1, 1)])
    assert (stats.runs, stats.completion_rate) == (5, 0.6)
    assert (stats.steps["a:0"].reached, stats.steps["a:0"].went_on, stats.steps["a:0"].stopped["waiting"]) == (4, 3, 1)
    assert stats.steps["start"].stopped["failed"] == 1 and stats.steps["start"].reached == 5
    assert stats.edges[("a:1", "jump", "goto", "a")] == 2 and stats.edges[("a:2", "next")] == 3
    assert table(stats)[:4] == ["runs             5, 60.0% completed", "  completed      3", "  running        1",
                                "  failed         1"]
    assert edge_of("m:1", "resume", "expire", None, "expired") == ("expire",)
    assert edge_of("m:1", "resume", "reply", None, "flow-error") is None


def test_since_takes_a_duration_or_a_date() -> None:
    now = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
    assert parse_since("90m", now) == datetime(2026, 12, 3, 10, 30, tzinfo=UTC)
    assert parse_since("2d", now) == datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert parse_since("2026-12-01", now) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2026-12-01T08:00:00-06:00", now) == datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    with pytest.raises(click.BadParameter):
        parse_since("yesterday", now)
