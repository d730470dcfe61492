"""The `flow-engine` console script, run as a user runs it (a subprocess of the installed entry point)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import BROKEN_PROBLEMS, EXAMPLE_FLOWS

FLOW_ENGINE = shutil.which("flow-engine", path=str(Path(sys.executable).parent))


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    assert FLOW_ENGINE, "the flow-engine console script is not installed next to this Python"
    return subprocess.run([FLOW_ENGINE, *args], capture_output=True, text=True, timeout=60)


def test_validate_prints_ok_for_a_valid_flow() -> None:
    result = cli("validate", str(EXAMPLE_FLOWS / "shop_demo.json"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_validate_prints_each_problem_and_exits_1() -> None:
    result = cli("validate", str(EXAMPLE_FLOWS / "broken.json"))
    assert result.returncode == 1
    assert result.stdout.splitlines() == BROKEN_PROBLEMS
    assert result.stderr == ""  # RE2 logs nothing of its own


def test_validate_reports_unreadable_input_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    result = cli("validate", str(bad))
    assert result.returncode == 1
    assert result.stderr == f"Error: {bad}: not valid JSON: Expecting property name enclosed in double quotes: " \
                            "line 1 column 2 (char 1)\n"
    missing = cli("validate", str(tmp_path / "missing.json"))
    assert missing.returncode == 1 and missing.stderr.startswith(f"Error: {tmp_path / 'missing.json'}: cannot read")
    assert "Traceback" not in missing.stderr


def test_simulate_json_verification_code_bar() -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "verification_code.json"), "--json",
                 "say:hola", "say:no lo tengo", "say:es 123456")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    effects = [(line["kind"], line.get("text") or line.get("key") or line.get("body", {}).get("data")) for line in lines
               if line["kind"] in ("outbox", "attribute", "webhook")]
    assert effects == [
        ("outbox", "Envíame el código de 6 dígitos que recibiste."),
        ("attribute", "verified"),
        ("outbox", "¡Código recibido: es 123456! Gracias."),
        ("webhook", {"event": "code_received"}),
    ]
    attribute = next(line for line in lines if line["kind"] == "attribute")
    assert attribute["value"] is True
    runs = [(line["status"], line["last_step"]) for line in lines if line["kind"] == "run"]
    assert runs == [("running", "ask:1"), ("completed", "ask:4")]


def test_simulate_transcript_with_contact_options_and_virtual_clock() -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "shop_demo.json"), "--name", "Ana", "--attr", "vip=true",
                 "say:hola", "wait:2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[  0.000s] Ana > hola",
        "           bot > ¡Hola Ana! Bienvenido a la tienda.",
        "           … waiting for the delay until 1.500s",
        "[  1.500s] ⏰ delay is due",
        "           ✎ greeted = true",
        "           bot > ¿Quieres ver el catálogo o hablar con un asesor?",
        "           ■ run completed",
    ]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["shout:hola"], "Error: Invalid value for STEP: 'shout:hola' is neither say:TEXT, wait:SECONDS nor release"),
        (["wait:soon"], "Error: Invalid value for STEP: 'wait:soon': wait needs seconds, e.g. wait:2.5"),
        (["--attr", "novalue", "say:x"], "Error: Invalid value for --attr: 'novalue' is not KEY=VALUE"),
    ],
)
def test_simulate_rejects_bad_steps_in_one_line(args: list[str], error: str) -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "shop_demo.json"), *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == error


def test_simulate_refuses_an_invalid_flow_with_its_problems() -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "broken.json"), "say:hola")
    assert result.returncode == 1
    assert result.stderr.splitlines()[1] == 'nodes[0].map.pricing: path "missing_path" does not exist'


def test_graph_prints_a_mermaid_flowchart_with_routes_steps_and_timeouts() -> None:
    result = cli("graph", str(EXAMPLE_FLOWS / "verification_code.json"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:4] == ["flowchart TD", '  in(["message in"])', "  in --> router{intent}",
                         "  router -->|default| p_ask_0"]
    assert '  p_ask_1[/"wait for reply /\\b\\d{6}\\b/, 30 s"/]' in lines
    assert "  p_ask_1 -->|reply| p_ask_2" in lines
    assert "  p_ask_1 -.->|timeout| p_expired_0" in lines
    assert '  p_ask_4["webhook: {#quot;event#quot;: #quot;code_received#quot;}"]' in lines
    broken = cli("graph", str(EXAMPLE_FLOWS / "broken.json"))
    assert broken.returncode == 1 and "is not a valid flow" in broken.stderr


def test_validate_prints_warnings_for_nodes_it_ignores_and_exits_0(tmp_path: Path) -> None:
    builder = tmp_path / "builder.json"
    builder.write_text(json.dumps({"name": "demo", "version": 2, "nodes": [
        {"id": "t1", "type": "trigger", "on": "message_in"}, {"id": "x", "type": "sticky_note"},
        {"id": "n1", "type": "intent", "map": {"default": "p"}}],
        "paths": {"p": [{"type": "action", "action": "send_text", "text": "hola"}]}}))
    result = cli("validate", str(builder))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == ['warning: nodes[1].type: node type "sticky_note" is not supported, ignored',
                                          "ok"]


def test_simulate_transcript_shows_held_messages_re_prompts_interrupts_and_expiry(tmp_path: Path) -> None:
    flow = tmp_path / "flow.json"
    flow.write_text(json.dumps({"interrupt": ["menu"], "expire_after_minutes": 1, "nodes": [], "paths": {
        "path_default": [{"type": "delay", "seconds": 1},
                         {"type": "wait_for_reply", "pattern": "^\\d+$", "no_match_text": "solo números"},
                         {"type": "action", "action": "send_text", "text": "número {{message.text}}"}]}}))
    result = cli("simulate", str(flow), "say:hola", "say:abc", "say:12", "wait:1", "say:hola", "wait:1",
                 "say:x", "say:Menu", "wait:61")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[  0.000s] 5215550000000 > hola",
        "           … waiting for the delay until 1.000s",
        "[  0.000s] 5215550000000 > abc",
        "           (held: the run is in a delay; handled when it waits for a reply or ends)",
        "[  0.000s] 5215550000000 > 12",
        "           (held: the run is in a delay; handled when it waits for a reply or ends)",
        "[  1.000s] ⏰ delay is due",
        "           … waiting for a reply until 61.000s",
        "[  1.000s] 5215550000000 > abc   (held until now)",
        "           bot > solo números",
        "[  1.000s] 5215550000000 > 12   (held until now)",
        "           bot > número 12",
        "           ■ run completed",
        "[  1.000s] 5215550000000 > hola",
        "           … waiting for the delay until 2.000s",
        "[  2.000s] ⏰ delay is due",
        "           … waiting for a reply until 62.000s",
        "[  2.000s] 5215550000000 > x",
        "           bot > solo números",
        "[  2.000s] 5215550000000 > Menu",
        "           ■ run interrupted",
        "           … waiting for the delay until 3.000s",
        "[  3.000s] ⏰ delay is due",
        "           … waiting for a reply until 63.000s",
        "[ 63.000s] ⏰ the wait expires",
        "           ■ run expired",
    ]


def test_simulate_start_sets_the_virtual_clock_for_business_hours_and_release_gives_the_contact_back() -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "support_desk.json"), "--name", "Ana",
                 "--start", "2026-12-07T17:59:00-06:00", "say:quiero un asesor", "say:¿sigues?", "release",
                 "wait:60", "say:necesito un asesor")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "[  0.000s] Ana > quiero un asesor",
        "           bot > Te comunico con un asesor, en un momento te atiende.",
        '           → handoff {"queue": "soporte", "note": "Ana escribió: quiero un asesor"}',
        "           … with an agent until 86400.000s (2026-12-08 23:59:00 UTC)",
        "           ■ run completed",
        "[  0.000s] Ana > ¿sigues?",
        "           (ignored: the contact is with an agent)",
        "[  0.000s] ⇄ release (the agent is done)",
        "           (back with the bot)",
        "[ 60.000s] Ana > necesito un asesor",  # 18:00: closed, until Tuesday 09:00 in Mexico City
        "           ↪ agent:0 closed → after_hours",
        "           ✎ tag +callback",
        "           bot > Ahora estamos cerrados (lun a jue 9 a 18, vie 9 a 14 y 16 a 20, sáb 10 a 14). Te escribimos"
        " en cuanto abramos.",
        "           … waiting for the delay until 54060.000s (2026-12-08 15:00:00 UTC)",
    ]


@pytest.mark.parametrize(
    ("start", "error"),
    [("2026-12-07",
      "Error: Invalid value for --start: '2026-12-07' needs its UTC offset, e.g. 2026-12-07T10:30:00-06:00"),
     ("mañana", "Error: Invalid value for --start: 'mañana' is not an ISO time such as 2026-12-07T10:30:00-06:00")],
)
def test_simulate_refuses_a_start_without_offset_or_not_a_time(start: str, error: str) -> None:
    result = cli("simulate", str(EXAMPLE_FLOWS / "support_desk.json"), "--start", start, "say:hola")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == error


def test_handoff_commands_say_in_one_line_that_redis_is_unreachable() -> None:
    env = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}
    for args in (["handoff", "list"], ["handoff", "release", "--org", "o", "--contact", "521"]):
        result = subprocess.run([str(FLOW_ENGINE), *args], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.startswith("Error: Redis is not reachable at redis://127.0.0.1:1/0 (")
        assert len(result.stderr.splitlines()) == 1
