"""What operators see and do: worker metrics summed over prefork children, JSON logs without
personal data, status, and the DLQ commands (list, replay without duplicates, purge)."""

from __future__ import annotations

import json
import time
import urllib.request

import pytest

from flow_engine.adapters.keys import DLQ, INCOMING
from flow_engine.core.ids import derive
from tests.devstack import Stack
from tests.runtime.conftest import cli, metrics_stack, new_org

ECHO = {"nodes": [], "paths": {"path_default": [{"type": "action", "action": "send_text", "text": "eco"}]}}


stack = pytest.fixture(scope="module", name="stack")(metrics_stack)


def metric(text: str, name: str) -> float:
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def test_worker_metrics_are_totals_over_its_prefork_children(stack: Stack) -> None:
    port = stack.metrics_port  # type: ignore[attr-defined]
    before = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    org = new_org()
    stack.load_flow(org, ECHO)
    for n in range(40):
        stack.send(org, f"52155{n:05d}", "hola")
    stack.wait_outbox(org, 40)
    stack.settled()
    after = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for name in ("nexia_engine_incoming_processed_total", "nexia_engine_outbox_published_total"):
        assert metric(after, name) - metric(before, name) == 40
    latency = "nexia_engine_latency_seconds_count"
    assert metric(after, latency) - metric(before, latency) == 40
    records = [json.loads(line) for line in stack["worker0"].log().splitlines() if line.startswith("{")]
    children = {r["pid"] for r in records if "succeeded" in r["msg"]}
    assert len(children) == 2, "both children should have processed lanes for the sum to mean anything"


def test_logs_are_json_lines_without_phone_numbers_or_texts(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    stack.send(org, "5215559876543", "mi secreto")
    stack.wait_outbox(org, 1)
    for name in ("bridge0", "scheduler0"):
        lines = [line for line in stack[name].log().splitlines() if line.strip()]
        records = [json.loads(line) for line in lines]
        assert {r["component"] for r in records} == {name.rstrip("0")}
        assert all({"ts", "level", "logger", "msg"} <= set(r) for r in records)
    worker_records = [json.loads(line) for line in stack["worker0"].log().splitlines() if line.startswith("{")]
    assert worker_records and {r["component"] for r in worker_records} == {"worker"}
    everything = "\n".join(p.log() for p in stack.processes.values())
    assert "5215559876543" not in everything and "mi secreto" not in everything


def test_status_reports_the_engine_as_numbers(stack: Stack) -> None:
    stack.settled()
    result = cli(stack, "status", "--json")
    assert result.returncode == 0, result.stderr
    state = json.loads(result.stdout)
    assert (state["group_lag"], state["pending"], state["lanes_backlog"], state["bridge"]) == (0, 0, 0, "bridge0")
    assert state["workers"] and all(name.startswith("w0@") for name in state["workers"])
    assert state["stream_length"] == stack.redis.xlen(INCOMING)
    assert state["streams"]["nf:incoming"]["length"] == stack.redis.xlen(INCOMING)
    assert state["streams"]["nf:incoming"]["memory_bytes"] == stack.redis.memory_usage(INCOMING, samples=0)
    assert set(state["streams"]) == {"nf:incoming", "nf:outbox", "nf:webhooks", "nf:incoming:dlq"}
    assert state["redis_memory"]["used_memory"] > 0 and "maxmemory" in state["redis_memory"]
    text = cli(stack, "status", "--no-workers").stdout
    assert "redis memory" in text and "nf:outbox" in text and "oldest" in text
    health = cli(stack, "health", "--check", "redis", "--check", "db", "--check", "bridge", "--check", "worker")
    assert (health.returncode, health.stdout) == (0, "ok: redis, db, bridge, worker\n")


def test_dlq_list_replay_and_purge(stack: Stack) -> None:
    org = new_org()
    stack.load_flow(org, ECHO)
    bad = stack.redis.xadd(INCOMING, {"org_id": org, "payload": "[1, 2]"})
    stack.wait_until(lambda: stack.stream(DLQ, org), 10, "the invalid entry in the DLQ")
    # One message of a two-message body failed earlier: its DLQ entry names which one and its key.
    body = {"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
        "metadata": {"phone_number_id": "ch1"}, "messages": [
            {"from": "5215551111", "id": "wamid.R1", "type": "text", "text": {"body": "uno"}},
            {"from": "5215552222", "id": "wamid.R2", "type": "text", "text": {"body": "dos"}}]}}]}]}
    failed = stack.redis.xadd(DLQ, {"org_id": org, "channel_id": "ch1", "payload": json.dumps(body),
                                    "error": "max-retries-exceeded", "error_detail": "OperationalError: down",
                                    "retries": "2", "source_id": "1700000000000-0", "failed_at": "1",
                                    "event_index": "1", "event_key": "1700000000000-0/1"})
    listed = cli(stack, "dlq", "list", "--json", "--limit", "1000")
    mine = [json.loads(line) for line in listed.stdout.splitlines() if json.loads(line).get("org_id") == org]
    assert [(e["error"], e.get("source_id")) for e in mine] == [("invalid-payload", bad),
                                                                ("max-retries-exceeded", "1700000000000-0")]
    replayed = cli(stack, "dlq", "replay", failed)
    assert (replayed.returncode, replayed.stdout) == (0, "replayed 1 entries into nf:incoming\n")
    outbox = stack.wait_outbox(org, 1)
    time.sleep(0.5)
    assert [(e["to"], e["orig_text"]) for e in stack.outbox(org)] == [("5215552222", "dos")]  # only the failed one
    assert outbox[0]["client_id"] == derive("1700000000000-0/1", "out", 0)  # the ids of its first attempt
    again = cli(stack, "dlq", "replay", failed)
    assert again.returncode == 1 and f"not in the DLQ (replayed or purged already): {failed}" in again.stderr
    purged = cli(stack, "dlq", "purge", "--yes")
    assert purged.returncode == 0 and purged.stdout.startswith("purged ")
    assert stack.redis.xlen(DLQ) == 0
