"""The platform's NLP service, asked for the intent of messages that enter a flow (NLP_SERVICE_URL).

Contract: `POST {url}/api/nlp/intents` `{"text", "top_k": 1}` -> `{"top_intents": [{"label", "score"}],
"primary_intent"}`. Any failure — unreachable, slower than NLP_TIMEOUT_SECONDS, an error status, an
unexpected body, a score under NLP_MIN_SCORE, or the label `default` — leaves the decision to the
keywords. What was decided is recorded in Redis under the event's key before anything is written,
so a replay after a crash routes the message the same way whatever the service answers then.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from flow_engine.adapters.keys import Keys
from flow_engine.adapters.scripts import RedisClient

log = logging.getLogger("flow_engine.nlp")
PATH = "/api/nlp/intents"
PARALLEL = 8  # requests in flight at once: a batch of entering messages is not asked one by one
RECORD_TTL_S = 6 * 3600  # long past any retry of the event (a DLQ replay later may decide afresh)
KEYWORDS = ""  # recorded when the keywords decide


def decision_key(event_key: str) -> str:
    return Keys.intent(event_key)


class Nlp:
    def __init__(self, url: str, timeout_s: float, min_score: float) -> None:
        self.url = url.rstrip("/") + PATH
        self.timeout_s, self.min_score = timeout_s, min_score
        self.pool = ThreadPoolExecutor(PARALLEL, thread_name_prefix="nlp")
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # an internal service

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)

    def ask(self, text: str) -> str | None:
        """The service's label for `text`, or None (keywords decide)."""
        request = urllib.request.Request(
            self.url, data=json.dumps({"text": text, "top_k": 1}).encode(), method="POST",
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with self.opener.open(request, timeout=self.timeout_s) as response:
                body = json.loads(response.read(64 * 1024))
        except Exception as exc:  # any failure of the service means keywords
            log.debug("NLP service: %s: %s", type(exc).__name__, exc)
            return None
        return self.label_of(body)

    def label_of(self, body: Any) -> str | None:
        top = body.get("top_intents") if isinstance(body, dict) else None
        if not isinstance(top, list) or not top or not isinstance(top[0], dict):
            return None
        label, score = top[0].get("label"), top[0].get("score")
        if not isinstance(label, str) or not label or label == "default":
            return None
        if not isinstance(score, int | float) or score < self.min_score:
            return None
        return label

    def ask_many(self, texts: Sequence[str]) -> list[str | None]:
        """Labels for `texts`, asked in parallel; the whole lot takes at most about the timeout (what
        has not come back by then is left to the keywords)."""
        futures = [self.pool.submit(self.ask, text) for text in texts]
        wait(futures, timeout=self.timeout_s + 0.05)
        answers = [f.result() if f.done() and not f.cancelled() else None for f in futures]
        for future in futures:
            future.cancel()  # not started yet: not needed any more
        return answers


def decide(client: RedisClient, nlp: Nlp, messages: Sequence[tuple[str, str]]) -> dict[str, str | None]:
    """The intent of each (event key, text): recorded earlier for that event (a replay), else the
    service's answer, recorded now. None: the keywords decide."""
    if not messages:
        return {}
    keys = [decision_key(event_key) for event_key, _text in messages]
    recorded = client.mget(keys)
    todo = [i for i, value in enumerate(recorded) if value is None]
    answers = nlp.ask_many([messages[i][1] for i in todo]) if todo else []
    pipe = client.pipeline(transaction=False)
    for i, answer in zip(todo, answers, strict=True):
        pipe.set(keys[i], answer or KEYWORDS, nx=True, get=True, ex=RECORD_TTL_S)  # the first decision stays
    for i, answer, earlier in zip(todo, answers, pipe.execute() if todo else [], strict=True):
        recorded[i] = earlier if earlier is not None else (answer or KEYWORDS)
    return {event_key: recorded[i] or None for i, (event_key, _text) in enumerate(messages)}
