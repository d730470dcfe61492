"""The platform's NLP service, stood in for by a real HTTP server: its labels route messages that
enter a flow; slow, failing or unsure answers leave it to the keywords; a replay decides the same."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest
import redis

from flow_engine.adapters import nlp
from tests.devstack import Stack
from tests.runtime.conftest import new_org


class FakeNlp(BaseHTTPRequestHandler):
    """Answers by words in the text: "slow" sleeps 3 s, "pause" 0.3 s, "kaput" is a 500, "unsure" scores 0.1,
    "garbage" is not JSON; else the label `answers[text]` (default "sales") with score 0.9."""

    requests: ClassVar[list[tuple[str, Any]]] = []
    answers: ClassVar[dict[str, str]] = {}

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeNlp.requests.append((self.path, body))
        text = body["text"]
        if "slow" in text:
            time.sleep(3)
        if "pause" in text:
            time.sleep(0.3)
        if "kaput" in text:
            self.send_response(500)
            self.end_headers()
            return
        label = FakeNlp.answers.get(text, "sales")
        reply = b"<html>" if "garbage" in text else json.dumps({
            "top_intents": [{"label": label, "score": 0.1 if "unsure" in text else 0.9}],
            "primary_intent": label}).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply)
        except OSError:
            pass  # the engine gave up waiting (the slow case)

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def service() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeNlp)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_labels_come_from_the_service_and_failures_from_nowhere(service: str) -> None:
    client = nlp.Nlp(service, timeout_s=0.5, min_score=0.32)
    try:
        assert client.ask("quiero eso") == "sales"
        assert FakeNlp.requests[-1] == ("/api/nlp/intents", {"text": "quiero eso", "top_k": 1})
        for text in ("kaput", "unsure", "garbage"):
            assert client.ask(text) is None, text
        started = time.monotonic()
        assert client.ask("slow") is None
        assert time.monotonic() - started < 1.0
        FakeNlp.answers["adios"] = "default"  # the service's default is no opinion: keywords decide
        assert client.ask("adios") is None
    finally:
        client.close()
    assert nlp.Nlp("http://127.0.0.1:1", timeout_s=0.5, min_score=0.3).ask("hola") is None  # nobody listens


def test_a_batch_is_asked_in_parallel_within_about_one_timeout(service: str) -> None:
    client = nlp.Nlp(service, timeout_s=1.0, min_score=0.32)
    try:
        started = time.monotonic()
        answers = client.ask_many(["slow 1", "slow 2"] + [f"pause {n}" for n in range(8)])
        elapsed = time.monotonic() - started
    finally:
        client.close()
    assert answers == [None, None] + ["sales"] * 8
    assert elapsed < 1.5  # one after the other: 2 x 1 s + 8 x 0.3 s


def test_a_replay_reuses_what_was_decided(service: str, redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    service_client = nlp.Nlp(service, timeout_s=0.5, min_score=0.32)
    try:
        key = f"{new_org()}-0/0"
        FakeNlp.answers["a thing"] = "pricing"
        assert nlp.decide(client, service_client, [(key, "a thing"), (key + "x", "kaput")]) == {
            key: "pricing", key + "x": None}
        FakeNlp.answers["a thing"] = "support"  # the service changed its mind since
        asked = len(FakeNlp.requests)
        assert nlp.decide(client, service_client, [(key, "a thing"), (key + "x", "kaput")]) == {
            key: "pricing", key + "x": None}
        assert len(FakeNlp.requests) == asked  # recorded decisions are not asked again
        assert 0 < client.ttl(nlp.decision_key(key)) <= nlp.RECORD_TTL_S
    finally:
        service_client.close()
        client.close()


FLOW: dict[str, Any] = {"nodes": [{"id": "n1", "type": "intent", "keywords": {"support": ["roto"]}, "map": {
    "sales": "sales", "gratitude": "thanks", "goodbye": "bye", "greeting": "hello", "support": "support",
    "default": "other"}}],
    "paths": {name: [{"type": "action", "action": "send_text", "text": name}] for name in
              ("sales", "thanks", "bye", "hello", "support", "other")}}
FLOW["paths"]["hello"].append({"type": "wait_for_reply", "seconds": 60})
FLOW["paths"]["hello"].append({"type": "action", "action": "send_text", "text": "reply: {{message.text}}"})


@pytest.fixture(scope="module")
def nlp_stack(service: str, redis_url: str, database_url: str,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    stack = Stack(redis_url, database_url, tmp_path_factory.mktemp("logs"),
                  env={"NLP_SERVICE_URL": service, "NLP_TIMEOUT_SECONDS": "1"})
    try:
        stack.start()  # inside: a stack that fails to start is stopped too
        yield stack
    finally:
        stack.stop()


def test_messages_entering_a_flow_are_routed_by_the_service_else_by_keywords(nlp_stack: Stack) -> None:
    org = new_org()
    nlp_stack.load_flow(org, FLOW)
    sent = {"5215550201": "necesito eso",  # the service: sales (no keyword says so)
            "5215550202": "gracias slow",  # too slow: keywords, gratitude
            "5215550203": "adios kaput",  # an error: keywords, goodbye
            "5215550204": "hola unsure",  # scored under NLP_MIN_SCORE: keywords, greeting
            "5215550205": "algo roto"}  # the flow's own keywords come first: support
    for phone, text in sent.items():
        nlp_stack.send(org, phone, text)
    nlp_stack.wait_outbox(org, 5)
    nlp_stack.send(org, "5215550204", "a reply, not asked")
    nlp_stack.wait_outbox(org, 6)
    nlp_stack.settled()
    by_contact = {e["to"]: e["text"] for e in nlp_stack.outbox(org)}
    assert by_contact == {"5215550201": "sales", "5215550202": "thanks", "5215550203": "bye",
                          "5215550204": "reply: a reply, not asked", "5215550205": "support"}
    assert "a reply, not asked" not in [body["text"] for _path, body in FakeNlp.requests]
    intents = nlp_stack.rows("SELECT contact, context->>'intent' FROM flow_runs WHERE org_id = :org ORDER BY contact",
                             org=org)
    assert [tuple(r) for r in intents] == [("5215550201", "sales"), ("5215550202", "gratitude"),
                                           ("5215550203", "goodbye"), ("5215550204", "greeting"),
                                           ("5215550205", "support")]
