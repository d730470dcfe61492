"""Transient failures: retried with backoff up to FLOW_ENGINE_MAX_RETRIES, then the DLQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flow_engine.adapters.keys import DLQ
from tests.devstack import Stack
from tests.runtime.conftest import new_org


@pytest.fixture(scope="module")
def stack(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A database that cannot be reached (nothing listens on port 9): every event fails transiently."""
    s = Stack(redis_url, "postgresql+psycopg2://postgres@127.0.0.1:9/unreachable", tmp_path_factory.mktemp("logs"),
              env={"FLOW_ENGINE_MAX_RETRIES": "2", "FLOW_ENGINE_RETRY_BACKOFF_MS": "50"})
    s.start()
    yield s
    s.stop()


def test_an_unreachable_database_sends_each_event_to_the_dlq_after_its_retries(stack: Stack) -> None:
    org = new_org()
    first = stack.send(org, "5215550100", "hola")
    second = stack.send(org, "5215550100", "otra")
    dlq = stack.wait_until(lambda: len(stack.stream(DLQ, org)) >= 2 and stack.stream(DLQ, org), 30, "two DLQ entries")
    assert [(e["source_id"], e["error"], e["retries"], e["event_index"]) for e in dlq] == [
        (first, "max-retries-exceeded", "2", "0"), (second, "max-retries-exceeded", "2", "0")]
    assert all(e["error_detail"].startswith("OperationalError: ") and "\n" not in e["error_detail"] for e in dlq)
    assert stack.outbox(org) == []
    log = stack["worker0"].log()
    assert log.count("retry 1 in") >= 2 and log.count("retry 2 in") >= 2
    stack.settled()
