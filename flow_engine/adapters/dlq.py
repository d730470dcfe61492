"""Entries of nf:incoming:dlq (SPEC §3) and their replay into nf:incoming."""

from __future__ import annotations

import re
from collections.abc import Mapping

# Fields the DLQ adds to the original ones; a replay removes them again.
DLQ_FIELDS = ("error", "error_detail", "retries", "source_id", "failed_at", "event_index", "event_key")
REPLAY_FIELDS = ("replay_index", "replay_key", "replay_of", "replay_sig")


# Characters a terminal acts on instead of showing: C0 and C1 controls, DEL, and the bidirectional
# overrides that reorder what is shown. An entry is data from outside; printing them raw lets it
# move the cursor, retitle the window or hide text.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with every character a terminal would act on shown as an escape (`\x1b`, `\u202e`)."""
    return _UNSAFE.sub(lambda found: ascii(found[0])[1:-1], text)


def printable_json(encoded: str) -> str:
    """JSON text with the same characters as `printable` written as JSON escapes (still valid JSON)."""
    return _UNSAFE.sub(lambda found: f"\\u{ord(found[0]):04x}", encoded)


def one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def dlq_entry(
    fields: Mapping[str, str] | Mapping[bytes, bytes],
    *,
    error: str,
    detail: str,
    retries: int,
    source_id: str,
    failed_at_ms: int,
    event_index: int | None = None,
    event_key: str | None = None,
) -> list[str | bytes]:
    """Flat [name, value, ...] of a DLQ entry: the original fields plus why and when it failed."""
    flat: list[str | bytes] = []
    for name, value in fields.items():
        if (name.decode(errors="replace") if isinstance(name, bytes) else name) not in DLQ_FIELDS:
            flat += [name, value]
    flat += ["error", error, "error_detail", one_line(detail), "retries", str(retries), "source_id", source_id,
             "failed_at", str(failed_at_ms)]
    if event_index is not None and event_key is not None:
        flat += ["event_index", str(event_index), "event_key", event_key]
    return flat


def replay_fields(dlq_id: str, fields: Mapping[str, str | bytes]) -> dict[str, str | bytes]:
    """The nf:incoming entry that re-runs a DLQ entry: its original fields, and for one event of a
    larger body, which event and under which key (so its ids are those of the first attempt)."""
    replay = {name: value for name, value in fields.items() if name not in DLQ_FIELDS + REPLAY_FIELDS}
    if "event_index" in fields and "event_key" in fields:
        replay.update(replay_index=fields["event_index"], replay_key=fields["event_key"])
    replay["replay_of"] = dlq_id
    return replay
