"""Flow runs as data: each tests/fixtures/runs/*.json plays a conversation through the simulator
(the production interpreter on a virtual clock) and lists the effects expected, in order.

An expected effect matches when every field it names equals the actual one; ids are hashes, so
fixtures name them only where identity matters (e.g. a timer cancelled is the timer added). A
fixture's optional "control" sets the engine's conversation-control settings (max_steps,
expire_after_min, interrupt_words, max_held, handoff_ttl_min) as FLOW_ENGINE_* would; its optional
"start" (an ISO time with offset) is where the virtual clock starts, as `simulate --start` (default:
epoch 0, a Thursday); a step "release" is a `control=release` entry (the agent is done).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from flow_engine.core.control import Control
from flow_engine.core.graph import parse_flow
from flow_engine.core.outcome import Contact
from flow_engine.core.simulator import Simulator, effect_lines
from tests.conftest import FIXTURES, REPO

RUNS = sorted((FIXTURES / "runs").glob("*.json"))


def play(case: dict[str, Any]) -> list[dict[str, Any]]:
    graph = case["flow"] if "flow" in case else json.loads((REPO / case["flow_file"]).read_text())
    flow = parse_flow(graph, flow_id=case.get("flow_id", "f1"), version=1)
    assert flow.problems == (), flow.problems
    contact = case.get("contact", {})
    settings = case.get("control", {})  # the engine's settings of conversation control, if not the defaults
    control = Control.of(settings.get("max_steps", 1000), settings.get("expire_after_min", 1440),
                         settings.get("interrupt_words", ""), settings.get("max_held", 50),
                         settings.get("handoff_ttl_min", 1440))
    sim = Simulator(
        flow,
        org_id=case.get("org", "acme"),
        channel_id=case.get("channel", "ch1"),
        contact=Contact(contact.get("phone", "5215550001"), contact.get("name", ""), contact.get("attributes", {})),
        control=control,
        start_ms=int(datetime.fromisoformat(case["start"]).timestamp() * 1000) if "start" in case else 0,
    )
    lines: list[dict[str, Any]] = []
    for step in case["steps"]:
        verb, _, arg = step.partition(":")
        happenings = sim.release() if verb == "release" else sim.say(arg) if verb == "say" else \
            sim.advance(float(arg))
        for happening in happenings:
            lines.extend(effect_lines(happening))
    return lines


def _matches(expected: Any, actual: Any) -> bool:
    """Every field the fixture names equals the actual one; nested objects match the same way."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and _matches(v, actual[k]) for k, v in expected.items())
    return bool(expected == actual and type(expected) is type(actual))


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_run_fixture(path: Path) -> None:
    case = json.loads(path.read_text())
    actual = play(case)
    expected = case["expect"]
    mismatch = [
        (i, e, a) for i, (e, a) in enumerate(zip(expected, actual, strict=False)) if not _matches(e, a)
    ]
    assert not mismatch and len(actual) == len(expected), (
        f"{path.name}: expected {len(expected)} effects, got {len(actual)}\n"
        + "\n".join(json.dumps(line, ensure_ascii=False) for line in actual)
    )


def test_there_is_a_fixture_for_every_step_type_and_alias() -> None:
    cases = [json.loads(p.read_text()) for p in RUNS]
    graphs = [case["flow"] if "flow" in case else json.loads((REPO / case["flow_file"]).read_text()) for case in cases]
    text = "\n".join(json.dumps(graph) for graph in graphs)
    for needle in ('"send_text"', '"send_template"', '"send_media"', '"asset"', '"webhook"', '"payload"',
                   '"set_attribute"', '"type": "wait"', '"type": "delay"', '"sec"', '"ms"', '"seconds"',
                   '"timeout_seconds"', '"timeout_path"', '"keywords"', '"path_default"', '"trigger"',
                   '"no_match_text"', '"max_attempts"', '"interrupt"', '"expire_after_minutes"',
                   '"save_as"', '"type": "branch"', '"default"', '"type": "goto"', '"type": "end"',
                   '"type": "split"', '"on"', '"type": "handoff"', '"queue"', '"note"', '"type": "business_hours"',
                   '"closed_path"', '"type": "add_tag"', '"type": "remove_tag"'):
        assert needle in text, f"no run fixture uses {needle}"
