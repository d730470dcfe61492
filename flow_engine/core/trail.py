"""Run trails: what a run did, step by step, kept in its flow_runs row (`trail`, `trail_count`).

Each event of a run adds entries, numbered from the run's count so far (carried by its wait state),
so applying an event twice writes the same numbers: the store merges by number (idempotent) and
keeps the last MAX_ENTRIES. An entry is a small JSON object:

- `s`: where — a step's location `"path:index"`, or `"start"` for entering the flow
- `t`: when, epoch ms of the event that ran it
- `k`: what — the step's type (`send_text`, `branch`, `delay`, ...), `start`, or `resume` (a paused
  run going on: the reply, the delay's or timeout's timer, the last attempt, the expiry, an interrupt)
- `via` (optional): the branch case's test, `default`, `goto`, `variant`; the intent for `start`;
  for `resume` what resumed it: `reply`, `delay`, `timeout`, `attempts`, `expire`, `interrupt`
- `to` (optional): the path it jumped to (or entered, for `start`)
- `end` (optional, on the last entry of an event): how the event left the run — `waiting` (paused
  at this step), or the run's end: `completed`, `expired`, `interrupted`, or the failure's code
  (`flow-error`, `loop-limit`, `output-limit`)

No message text or contact data goes in a trail: ids of steps, tests and paths only.

Stored, an entry is one string, its fields in that order joined by U+001F, the empty ones at the end
left out (`encode`): JSON objects of their own made the upsert of a run row twice as costly for
PostgreSQL (jsonb parses, merges and writes every nested object again); strings keep it to a few µs
an event. (U+001F travels as `\u001f` in JSON text: each empty field left out is 6 bytes fewer to send
and parse.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

MAX_ENTRIES = 500  # a run keeps its last 500 entries; trail_count says how many there were in all
START = "start"
SEP = "\x1f"  # between the fields of a stored entry; one inside a field is stored as U+241F
FIELDS = ("s", "t", "k", "via", "to", "end")

_kinds: dict[type, str] = {}


def step_kind(step: object) -> str:
    """A step's type as the flow names it: the module of its step type (core/steps/<kind>.py)."""
    cls = type(step)
    kind = _kinds.get(cls)
    if kind is None:
        module = cls.__module__.rsplit(".", 1)[-1]
        kind = _kinds[cls] = "invalid" if module == "base" else module
    return kind


def entry(where: str, at_ms: int, kind: str, via: str | None = None, to: str | None = None,
          end: str | None = None) -> dict[str, Any]:
    """One trail entry (see the module's docstring)."""
    made: dict[str, Any] = {"s": where, "t": at_ms, "k": kind}
    if via is not None:
        made["via"] = via
    if to is not None:
        made["to"] = to
    if end is not None:
        made["end"] = end
    return made


def encode(item: Mapping[str, Any]) -> str:
    """An entry as it is stored: `menu:2\x1f1764000000000\x1fbranch\x1fdefault\x1fno`."""
    via, to, end = item.get("via"), item.get("to"), item.get("end")
    stored = (f"{item['s']}\x1f{item['t']}\x1f{item['k']}\x1f{'' if via is None else via}\x1f"
              f"{'' if to is None else to}\x1f{'' if end is None else end}")
    if stored.count(SEP) != len(FIELDS) - 1:  # a separator inside a field
        stored = SEP.join("" if (value := item.get(name)) is None else str(value).replace(SEP, "\u241f")
                          for name in FIELDS)
    return stored.rstrip(SEP)


def decode(raw: Any) -> dict[str, Any]:
    """A stored entry as a dict (absent fields left out; `t` an int)."""
    if isinstance(raw, Mapping):
        return dict(raw)
    parts = str(raw).split(SEP)
    item: dict[str, Any] = {name: value for name, value in zip(FIELDS, parts, strict=False) if value}
    if "t" in item:
        item["t"] = int(item["t"]) if item["t"].isdigit() else 0
    return item


def numbered(first: int, entries: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Entries as stored: encoded, keyed by their number in the run (as text: a JSON object's keys),
    the last MAX_ENTRIES of them."""
    block = {str(number): encode(value) for number, value in enumerate(entries, first)}
    if len(block) > MAX_ENTRIES:
        keep = first + len(block) - MAX_ENTRIES
        block = {key: value for key, value in block.items() if int(key) >= keep}
    return block


def ordered(trail: Any) -> list[tuple[int, dict[str, Any]]]:
    """A stored trail (an object keyed by entry number; NULL for rows written before trails) as
    (number, entry) pairs in order."""
    if not isinstance(trail, Mapping):
        return []
    pairs = []
    for key, value in trail.items():
        try:
            pairs.append((int(key), decode(value)))
        except ValueError:
            continue
    return sorted(pairs, key=lambda pair: pair[0])


def describe(item: Mapping[str, Any]) -> str:
    """One entry as words: `intent greeting → menu`, `↩ reply`, `branch has_text true → yes`, with
    how the event left the run (`… waiting`, `■ completed`)."""
    kind, via, to, end = item.get("k", "?"), item.get("via"), item.get("to"), item.get("end")
    if kind == "start":
        words = "▶ start" + (f", intent {via} → {to}" if to is not None else "")
    elif kind == "resume":
        words = f"↩ {via or 'resumed'}"
    else:
        words = str(kind)
        if to is not None:
            words += (f" {via}" if via and via != kind else "") + f" → {to}"
    if end == "waiting":
        words += "  … waiting"
    elif end is not None:
        words += f"  ■ {end}"
    return words


def timeline(trail: Any, count: int) -> list[str]:
    """A stored trail as the lines of `flow-engine runs show`, timed from the first entry kept
    (`[   3.512s] menu:2           branch has_any_word ["1"] → party`)."""
    pairs = ordered(trail)
    lines = []
    dropped = count - len(pairs)
    if dropped > 0:
        lines.append(f"(the first {dropped} entries are not kept: a trail keeps the last {MAX_ENTRIES})")
    if not pairs:
        return lines
    first_ms = int(pairs[0][1].get("t") or 0)
    for _number, item in pairs:
        at_s = (int(item.get("t") or first_ms) - first_ms) / 1000
        lines.append(f"[{at_s:9.3f}s] {item.get('s', '?'):<16} {describe(item)}")
    return lines
