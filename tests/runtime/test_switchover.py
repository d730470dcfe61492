"""Switching from the previous engine: its wait values and its timers (scored in epoch seconds, past
and future) are converted — by `flow-engine state migrate`, by the timer loop at start, or when a
worker reads an old wait — and each resumes or expires exactly once; an entry its consumers left
pending in the group is handled once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from flow_engine.adapters.keys import INCOMING
from tests.devstack import Stack
from tests.runtime.platform import add_flow, add_org, platform_database, run_cli

GRAPH = {
    "nodes": [{"id": "n1", "type": "intent", "map": {"default": "hello"}}],
    "paths": {
        "hello": [
            {"type": "action", "action": "send_text", "text": "hola"},
            {"type": "delay", "seconds": 2},
            {"type": "action", "action": "send_text", "text": "después de la espera: {{message.text}}"},
            {"type": "wait_for_reply", "pattern": "^si$", "seconds": 30, "timeout_path": "late"},
            {"type": "action", "action": "send_text", "text": "confirmado"},
        ],
        "late": [{"type": "action", "action": "send_text", "text": "tarde"}],
    },
}
ZSET = "nf:incoming:scheduled"


def webhook(phone: str, text: str) -> str:
    return json.dumps({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages",
                      "value": {"contacts": [{"wa_id": phone}], "messages": [
                          {"from": phone, "id": f"wamid.old.{phone}", "type": "text", "text": {"body": text}}]}}]}]})


def old_timer(org: str, phone: str, due_s: int, path: str, index: int, token: str | None = None,
              channel: str | None = "ch1", text: str = "hola") -> tuple[str, int]:
    member: dict[str, object] = {"payload": webhook(phone, text), "org_id": org, "contact_phone": phone,
                                 "engine_resume": json.dumps({"path": path, "index": index})}
    if channel is not None:
        member["channel_id"] = channel
    if token is not None:
        member["resume_token"] = token
    return json.dumps(member), due_s


def old_wait(org: str, phone: str, index: int, token: str) -> str:
    return json.dumps({"path": "hello", "index": index, "pattern": "^si$", "resume_token": token, "org_id": org,
                       "channel_id": "ch1", "contact_phone": phone, "timeout_path": "late"})


@pytest.fixture(scope="module")
def switched(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, dict[str, str]]]:
    """The previous engine's state, `state migrate` (dry run, then for real), more old state left for
    the timer loop and the workers, then the engine started."""
    with platform_database() as url:
        assert run_cli(url, "db", "upgrade").returncode == 0
        org = add_org(url)
        add_flow(url, org, GRAPH)
        stack = Stack(redis_url, url, tmp_path_factory.mktemp("logs"))
        r = stack.redis
        now_s = int(time.time())
        r.zadd(ZSET, dict([old_timer(org, "5210000000001", now_s - 5, "hello", 2, text="quiero info"),
                           old_timer(org, "5210000000002", now_s + 4, "hello", 2, channel=None),
                           old_timer(org, "5210000000003", now_s - 1, "late", 0, token="tokC"),
                           old_timer(org, "5210000000004", now_s + 600, "late", 0, token="tokD")]))
        # Its TTL (the previous engine set the timeout) would run out before the engine is up.
        r.set(f"fe:wait:{org}:ch1:5210000000003", old_wait(org, "5210000000003", 3, "tokC"), ex=6)
        r.set(f"fe:wait:{org}:ch1:5210000000004", old_wait(org, "5210000000004", 4, "tokD"), ex=600)
        # The previous engine's consumer read an entry and died before acknowledging it.
        r.xgroup_create(INCOMING, "engine", id="$", mkstream=True)
        stack.send(org, "5210000000007", "hola")
        r.xreadgroup("engine", "previous-engine-1", {INCOMING: ">"}, count=10)
        before = sorted(r.zrange(ZSET, 0, -1, withscores=True))
        out = {}
        dry = run_cli(url, "state", "migrate", "--dry-run", redis_url=redis_url)
        assert dry.returncode == 0, dry.stderr
        out["dry"] = dry.stdout
        assert sorted(r.zrange(ZSET, 0, -1, withscores=True)) == before  # a dry run changes nothing
        real = run_cli(url, "state", "migrate", redis_url=redis_url)
        assert real.returncode == 0, real.stderr
        out["real"] = real.stdout
        out["again"] = run_cli(url, "state", "migrate", redis_url=redis_url).stdout
        # Left for the timer loop's start (an old timer) and for a worker's read (an old wait).
        r.zadd(ZSET, dict([old_timer(org, "5210000000006", now_s - 2, "hello", 2, text="tarde llegó")]))
        r.set(f"fe:wait:{org}:ch1:5210000000005", old_wait(org, "5210000000005", 3, "tokE"), ex=3600)
        try:
            stack.start()
            yield stack, org, out
        finally:
            stack.stop()


def texts(stack: Stack, org: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for entry in stack.outbox(org):
        found.setdefault(entry["to"], []).append(entry["text"])
    return found


def test_state_migrate_says_what_it_found_and_converted(switched: tuple[Stack, str, dict[str, str]]) -> None:
    _stack, _org, out = switched
    assert out["dry"].splitlines() == ["(dry run) waits of the previous engine: 2 found, 2 converted",
                                       "(dry run) timers of the previous engine: 4 found, 4 converted"]
    assert out["real"].splitlines() == ["waits of the previous engine: 2 found, 2 converted",
                                        "timers of the previous engine: 4 found, 4 converted"]
    assert out["again"].splitlines() == ["waits of the previous engine: 0 found, 0 converted",
                                         "timers of the previous engine: 0 found, 0 converted"]


def test_old_timers_and_waits_resume_or_expire_exactly_once(switched: tuple[Stack, str, dict[str, str]]) -> None:
    stack, org, _out = switched
    stack.wait_until(lambda: len(texts(stack, org).get("5210000000003", [])) >= 1, 15, "the old timeout")
    stack.send(org, "5210000000004", "si", channel="ch1")  # a reply to an old wait (migrated)
    stack.send(org, "5210000000005", "si", channel="ch1")  # a reply to an old wait (never migrated)
    stack.wait_until(lambda: len(texts(stack, org).get("5210000000001", [])) >= 1, 15, "the old past delay")
    stack.send(org, "5210000000001", "si", channel="ch1")
    stack.wait_until(lambda: len(texts(stack, org).get("5210000000002", [])) >= 1, 20, "the old future delay")
    time.sleep(2.5)  # contact 7 runs its own 2 s delay
    stack.settled()
    assert texts(stack, org) == {
        "5210000000001": ["después de la espera: quiero info", "confirmado"],
        "5210000000002": ["después de la espera: hola"],
        "5210000000003": ["tarde"],
        "5210000000004": ["confirmado"],
        "5210000000005": ["confirmado"],
        "5210000000006": ["después de la espera: tarde llegó"],
        "5210000000007": ["hola", "después de la espera: hola"],
    }
    assert {e["channel_id"] for e in stack.outbox(org) if e["to"] == "5210000000002"} == {"wa_main"}
    left = [json.loads(m) for m, _score in stack.redis.zrange(ZSET, 0, -1, withscores=True)]
    assert all(isinstance(m, list) for m in left)  # nothing in the previous engine's format
    assert not [m for m in left if m[4] == "5210000000004"]  # the reply cancelled its timeout
    runs = stack.rows("SELECT contact, status, last_step FROM flow_runs WHERE org_id = :org ORDER BY contact", org=org)
    assert [tuple(r) for r in runs] == [
        ("5210000000001", "completed", "hello:4"), ("5210000000002", "running", "hello:3"),
        ("5210000000003", "completed", "late:0"), ("5210000000004", "completed", "hello:4"),
        ("5210000000005", "completed", "hello:4"), ("5210000000006", "running", "hello:3"),
        ("5210000000007", "running", "hello:3")]
    assert stack.redis.xpending(INCOMING, "engine")["pending"] == 0
    assert stack.redis.ttl(f"fe:wait:{org}:wa_main:5210000000002") == -1  # our own waits: no TTL
    assert "switchover: timers of the previous engine: 1 found, 1 converted" in stack["scheduler0"].log()

