"""The bridge hands on no more of an org's entries while its lanes hold two full batches for each
lane (2 x FLOW_ENGINE_LANES x FLOW_ENGINE_LANE_BATCH): a blast waits in its org's inbox, the other orgs
are handed on as before, and nothing is lost or answered twice once the workers catch up. Real processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from flow_engine import ops
from flow_engine.adapters.keys import INCOMING, OUTBOX, Keys, part
from tests.devstack import Stack
from tests.runtime.conftest import new_org
from tests.runtime.test_fairness import ECHO, blast_entry

LANES, LANE_BATCH, READ_BATCH = 2, 50, 200
MOST_QUEUED = 2 * LANES * LANE_BATCH  # 200 events in an org's lanes: the bridge waits
BLAST = 2_000


@pytest.fixture(scope="module")
def stack(redis_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(redis_url, database_url, Path(tmp_path_factory.mktemp("logs")),
              env={"FLOW_ENGINE_LANES": str(LANES), "FLOW_ENGINE_LANE_BATCH": str(LANE_BATCH),
                   "FLOW_ENGINE_READ_BATCH": str(READ_BATCH)})
    s.start()
    yield s
    s.stop()


def lane_events(stack: Stack, org: str) -> int:
    return sum(n for lane, n in ops.lane_lengths(stack.redis).items() if Keys.lane_org(lane) == part(org))


def test_a_blast_waits_in_its_inbox_while_its_lanes_are_full_and_the_others_go_on(stack: Stack) -> None:
    loud, quiet = new_org(), new_org()
    stack.load_flow(loud, ECHO)
    stack.load_flow(quiet, ECHO)
    stack["worker0"].stop()  # nothing drains the lanes
    pipe = stack.redis.pipeline(transaction=False)
    for n in range(BLAST):
        pipe.xadd(INCOMING, blast_entry(loud, n))
    pipe.execute()
    for n in range(3):
        stack.send(quiet, f"52182000{n}", f"q{n}")
    stack.wait_until(lambda: lane_events(stack, quiet) == 3, 30, "the quiet org's messages in its lanes")
    stack.wait_until(lambda: stack.redis.xinfo_groups(INCOMING)[0]["lag"] == 0, 30, "the intake to take all in")
    # The loud org got reads until its lanes held MOST_QUEUED events; a read hands on at most
    # READ_BATCH, so they hold fewer than MOST_QUEUED + READ_BATCH. The rest waits in its inbox.
    in_lanes = lane_events(stack, loud)
    assert MOST_QUEUED <= in_lanes < MOST_QUEUED + READ_BATCH, in_lanes
    assert ops.inbox_lengths(stack.redis) == {loud: BLAST - in_lanes}
    stack["worker0"].start()
    stack.wait_outbox(quiet, 3, timeout_s=60)
    stack.settled(timeout_s=120)
    texts = Counter(fields["text"] for _id, fields in stack.redis.xrange(OUTBOX) if fields["org_id"] == loud)
    assert texts == Counter({f"eco: b{n}": 1 for n in range(BLAST)})  # every one answered, once
    assert ops.inbox_lengths(stack.redis) == {} and lane_events(stack, loud) == 0
