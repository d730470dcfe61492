"""Fairness between orgs through the real processes: a quiet org's messages are answered while a loud
org's backlog is still being worked off, not after it. Judged by the order of outbox entries (how
many of the loud org's answers were written between a quiet message and its answer), not by time."""

from __future__ import annotations

import json

from flow_engine import ops
from flow_engine.adapters.keys import CONVERSING, CONVERSING_BATCH, INCOMING, OUTBOX, Keys, part
from flow_engine.adapters.scripts import connect
from flow_engine.clock import now_ms
from flow_engine.runtime import Runtime
from flow_engine.settings import Settings
from tests.devstack import Stack
from tests.runtime.conftest import new_org

ECHO = {"nodes": [], "paths": {"path_default": [
    {"type": "action", "action": "send_text", "text": "eco: {{message.text}}"}]}}
BLAST = 6_000
# Written before the quiet messages with the bridge stopped: large enough that reading it in stream
# order (about 5,000 entries a second) takes the worker processes well past 1,600 answers.
BLAST_AHEAD = 30_000


def blast_entry(org: str, n: int) -> dict[str, str]:
    message = {"from": f"52170{n % 600:05d}", "id": f"wamid.blast.{n}", "type": "text", "text": {"body": f"b{n}"}}
    return {"org_id": org, "channel_id": "ch1",
            "payload": json.dumps({"entry": [{"changes": [{"value": {"messages": [message]}}]}]})}


def loud_answers_before_each_quiet_answer(stack: Stack, loud: str, quiet: str, blast: int) -> dict[str, int]:
    """For each quiet answer ("eco: q0".."eco: q2"), how many loud answers the outbox holds before it;
    checks that every quiet message and all `blast` loud ones were answered."""
    order = [(fields["org_id"], fields["text"]) for _id, fields in stack.redis.xrange(OUTBOX)
             if fields["org_id"] in (loud, quiet)]
    loud_before = {text: sum(1 for org, _ in order[:i] if org == loud)
                   for i, (org, text) in enumerate(order) if org == quiet}
    assert sorted(loud_before) == ["eco: q0", "eco: q1", "eco: q2"]
    assert sum(1 for org, _ in order if org == loud) == blast  # the loud org lost nothing
    return loud_before


def test_a_quiet_org_is_answered_while_a_loud_orgs_backlog_waits(stack: Stack) -> None:
    loud, quiet = new_org(), new_org()
    stack.load_flow(loud, ECHO)
    stack.load_flow(quiet, ECHO)
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(BLAST):
        pipe.xadd(INCOMING, blast_entry(loud, n))
    pipe.execute()
    # Wait until the blast sits in the loud org's lanes, then the quiet org speaks, three contacts.
    def handed_on() -> bool:  # read, taken out of the org's inbox, pushed to its lanes
        left = ops.backlog(stack.redis, stack.group)
        return left.lag == 0 and left.pending == 0
    stack.wait_until(handed_on, 60, "the blast to be handed on to the lanes")
    quiet_ids = [stack.send(quiet, f"52180000{n}", f"q{n}") for n in range(3)]
    stack.wait_outbox(quiet, 3, timeout_s=60)
    stack.settled(timeout_s=120)
    loud_before = loud_answers_before_each_quiet_answer(stack, loud, quiet, BLAST)
    # Each quiet answer came while most of the blast was still waiting: at most one turn of each
    # worker process (a batch of up to FLOW_ENGINE_LANE_BATCH events) after the quiet message.
    sent_at = min(int(i.split("-")[0]) for i in quiet_ids)
    loud_at_send = sum(1 for entry_id, fields in stack.redis.xrange(OUTBOX)
                       if fields["org_id"] == loud and int(entry_id.split("-")[0]) <= sent_at)
    assert all(count - loud_at_send <= 1_600 for count in loud_before.values()), (loud_at_send, loud_before)
    assert max(loud_before.values()) <= BLAST // 2, loud_before
    print("fairness:", json.dumps({"loud_answered_at_quiet_send": loud_at_send,
                                   "loud_answered_before_each_quiet_answer": loud_before}))


def test_a_quiet_orgs_messages_written_behind_a_loud_blast_are_not_answered_after_it(stack: Stack) -> None:
    loud, quiet = new_org(), new_org()
    stack.load_flow(loud, ECHO)
    stack.load_flow(quiet, ECHO)
    stack["bridge0"].stop()  # the blast, then the quiet messages, wait unread in nf:incoming
    for start in range(0, BLAST_AHEAD, 5_000):
        pipe = stack.redis.pipeline(transaction=False)
        for n in range(start, start + 5_000):
            pipe.xadd(INCOMING, blast_entry(loud, n))
        pipe.execute()
    for n in range(3):
        stack.send(quiet, f"52181000{n}", f"q{n}")
    stack["bridge0"].start()
    stack.wait_outbox(quiet, 3, timeout_s=60)
    stack.settled(timeout_s=180)
    loud_before = loud_answers_before_each_quiet_answer(stack, loud, quiet, BLAST_AHEAD)
    # Written after all 30,000, each quiet message is answered after at most a share of the bridge's
    # first reads (FLOW_ENGINE_READ_BATCH) and a batch of each worker process of the loud org's
    # answers: the bridge takes every entry into its org's inbox and reads the orgs' inboxes in turn.
    # Read in stream order, the quiet messages would come after the whole blast was handed on.
    assert max(loud_before.values()) <= 1_600, loud_before
    print("fairness, written behind the blast:", json.dumps({"loud_answered_before_each_quiet_answer": loud_before}))


def test_only_another_orgs_recent_conversations_make_a_lane_give_way(redis_url: str,
                                                                               database_url: str) -> None:
    r = connect(redis_url)
    loud, quiet = new_org(), new_org()
    lane = Keys.lane_id(loud, 5)
    rt = Runtime(Settings(redis_url=redis_url, database_url=database_url))
    try:
        r.delete(CONVERSING)
        assert not rt.others_conversing(lane)
        r.zadd(CONVERSING, {part(loud): now_ms()})  # its own conversations do not count
        assert not rt.others_conversing(lane)
        r.zadd(CONVERSING, {part(quiet): now_ms() - 5_000})  # over
        assert not rt.others_conversing(lane)
        r.zadd(CONVERSING, {part(quiet): now_ms()})
        assert rt.others_conversing(lane) and CONVERSING_BATCH == 50
    finally:
        rt.close()
        r.delete(CONVERSING)
