"""Run trails through the real processes (bridge, timer loop, worker, PostgreSQL), read back by
`flow-engine runs show`, `runs list`, `stats` and `graph --stats`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from flow_engine.adapters.keys import DLQ
from tests.devstack import Stack
from tests.runtime.conftest import new_org

FLOW_ENGINE = str(Path(sys.executable).parent / "flow-engine")

BOOKING = {"nodes": [{"type": "intent", "map": {"default": "main"}}], "paths": {
    "main": [{"type": "action", "action": "send_text", "text": "¿Reservamos? (si/no)"},
             {"type": "wait_for_reply"},
             {"type": "branch", "cases": [{"has_any_word": ["si"], "path": "yes"}], "default": "no"}],
    "yes": [{"type": "delay", "ms": 300}, {"type": "action", "action": "send_text", "text": "¡Reservado!"},
            {"type": "end"}],
    "no": [{"type": "action", "action": "send_text", "text": "Adiós"}]}}
STAMP = re.compile(r"^\[ *(\d+\.\d{3})s\] ")


def cli(stack: Stack, *args: str) -> str:
    env = {**os.environ, "DATABASE_URL": stack.engine.url.render_as_string(hide_password=False)}
    result = subprocess.run([FLOW_ENGINE, *args], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def run_of(stack: Stack, org: str, phone: str) -> str:
    rows = stack.rows("select id from flow_runs where org_id = :org and contact = :phone", org=org, phone=phone)
    assert len(rows) == 1, rows
    return str(rows[0][0])


def timeline(output: str) -> list[tuple[float, str]]:
    """The timeline lines of `runs show`: (seconds since the first entry, the rest of the line)."""
    lines = []
    for line in output.splitlines():
        stamp = STAMP.match(line)
        if stamp:
            lines.append((float(stamp.group(1)), line[stamp.end():].rstrip()))
    return lines


def converse(stack: Stack, org: str) -> dict[str, str]:
    """Three contacts: one books (a reply, a branch case, a delay), one declines, one never answers."""
    phones = {"books": "5215560001", "declines": "5215560002", "silent": "5215560003"}
    for phone in phones.values():
        stack.send(org, phone, "hola")
    stack.wait_outbox(org, 3)
    stack.send(org, phones["books"], "Sí, por favor")
    stack.send(org, phones["declines"], "no gracias")
    stack.wait_until(lambda: {"Adiós", "¡Reservado!"} <= {e["text"] for e in stack.outbox(org)}, 15,
                     "the booking and the goodbye")
    stack.settled()
    return phones


def test_runs_show_prints_the_trail_of_a_run_through_a_reply_a_branch_and_a_delay(stack: Stack) -> None:
    org = new_org()
    flow_id = stack.load_flow(org, BOOKING)
    phones = converse(stack, org)
    run_id = run_of(stack, org, phones["books"])
    shown = cli(stack, "runs", "show", run_id)
    header = shown.split("\n\n")[0].splitlines()
    assert header[:4] == [f"run      {run_id}", "status   completed at yes:2",
                          f"org      {org}  channel ch1  contact {phones['books']}",
                          f"flow     {flow_id} v1  intent greeting"]
    assert header[4].endswith("UTC, 9 steps recorded")
    lines = timeline(shown)
    assert [text for _, text in lines] == [
        "start            ▶ start, intent greeting → main",
        "main:0           send_text",
        "main:1           wait_for_reply  … waiting",
        "main:1           ↩ reply",
        'main:2           branch has_any_word ["si"] → yes',
        "yes:0            delay  … waiting",
        "yes:0            ↩ delay",
        "yes:1            send_text",
        "yes:2            end  ■ completed",
    ]
    at = [seconds for seconds, _ in lines]
    assert at == sorted(at) and at[6] - at[5] >= 0.3  # the delay's 300 ms, between its pause and its resume
    as_json = json.loads(cli(stack, "runs", "show", run_id, "--json"))
    assert [entry["n"] for entry in as_json["trail"]] == list(range(9))
    assert as_json["trail"][4] == {"n": 4, "s": "main:2", "t": as_json["trail"][4]["t"], "k": "branch",
                                   "via": 'has_any_word ["si"]', "to": "yes"}

    listed = [json.loads(line) for line in cli(stack, "runs", "list", "--org", org, "--json").splitlines()]
    assert sorted((r["contact"], r["status"], r["last_step"], r["trail_count"]) for r in listed) == [
        (phones["books"], "completed", "yes:2", 9), (phones["declines"], "completed", "no:0", 6),
        (phones["silent"], "running", "main:1", 3)]
    waiting = cli(stack, "runs", "list", "--org", org, "--status", "running", "--flow", "flow", "--since", "1h")
    assert [line.split()[0] for line in waiting.splitlines()] == [run_of(stack, org, phones["silent"])]


def test_stats_and_graph_count_the_runs_of_the_org(stack: Stack, tmp_path: Path) -> None:
    org = new_org()
    stack.load_flow(org, BOOKING)
    converse(stack, org)
    stats: dict[str, Any] = json.loads(cli(stack, "stats", "--org", org, "--json"))
    assert (stats["runs"], stats["by_status"], stats["completion_rate"]) == (
        3, {"completed": 2, "running": 1}, 2 / 3)
    steps = stats["steps"]
    assert steps["main:1"] == {"reached": 3, "passes": 5, "went_on": 2, "waiting": 1, "completed": 0, "expired": 0,
                               "failed": 0, "interrupted": 0}
    assert {where: (s["reached"], s["completed"]) for where, s in steps.items()} == {
        "start": (3, 0), "main:0": (3, 0), "main:1": (3, 0), "main:2": (2, 0), "yes:0": (1, 0), "yes:1": (1, 0),
        "yes:2": (1, 1), "no:0": (1, 1)}
    table = cli(stack, "stats", "--org", org).splitlines()
    assert table[0] == "runs             3, 66.7% completed"
    assert "main:1                          3        2           1           0           0           0           0" \
        in table
    flow_file = tmp_path / "booking.json"
    flow_file.write_text(json.dumps(BOOKING))
    drawn = cli(stack, "graph", str(flow_file), "--stats", "--org", org).splitlines()
    assert '  in(["message in<br/>3 runs"])' in drawn
    assert '  p_main_1[/"wait for reply<br/>3 runs, 1 waiting"/]' in drawn
    assert '  p_main_1 -->|"reply · 2"| p_main_2' in drawn
    assert '  p_main_2 -->|"has_any_word [#quot;si#quot;] · 1"| p_yes_0' in drawn
    assert '  p_main_2 -->|"default · 1"| p_no_0' in drawn
    by_name = cli(stack, "graph", "flow", "--stats", "--org", org).splitlines()  # the stored flow, by its name
    assert sorted(by_name) == sorted(drawn)  # (JSONB keeps the paths in another order)


def test_a_run_that_loops_keeps_the_last_500_steps_of_its_trail_and_counts_the_others(stack: Stack) -> None:
    """A delay of 1 ms and a goto back, until the loop guard fails the run at 1,000 steps."""
    org, phone = new_org(), "5215560009"
    stack.load_flow(org, {"nodes": [], "paths": {"path_default": [{"type": "delay", "ms": 1},
                                                                  {"type": "goto", "path": "path_default"}]}})
    stack.send(org, phone, "hola")
    stack.wait_until(lambda: stack.stream(DLQ, org), 60, "the loop guard")
    stack.settled()
    run_id = run_of(stack, org, phone)
    assert stack.rows("select status, last_step, trail_count from flow_runs where id = :id", id=run_id) == [
        ("failed", "path_default:0", 1501)]
    shown = cli(stack, "runs", "show", run_id)
    assert "(the first 1001 entries are not kept: a trail keeps the last 500)" in shown.splitlines()
    lines = [text for _, text in timeline(shown)]
    assert len(lines) == 500
    assert lines[-2:] == ["path_default:0   ↩ delay", "path_default:1   goto → path_default  ■ loop-limit"]
