"""Ids derived from the event that caused them, so replaying an event reproduces every id."""

from __future__ import annotations

from hashlib import blake2b


def _part(value: object) -> str:
    """A part with `%` and `/` escaped, so that parts cannot run into each other (org "p" + contact
    "q/x" and org "p/q" + contact "x" derive different ids); unchanged when it has neither."""
    text = str(value)
    if "%" in text or "/" in text:
        return text.replace("%", "%25").replace("/", "%2F")
    return text


def derive(event_key: str, *parts: object, size_bytes: int = 16) -> str:
    """A stable hex id for output `parts` of the event `event_key` (blake2b; 128 bits by default).

    `event_key` is the engine's own ("<stream id>/<index>", "timer:<token>") or a fixed namespace
    ("contact"); the parts after it may come from outside and are escaped."""
    return _digest("/".join([event_key, *map(_part, parts)]), size_bytes)


def derive_own(event_key: str, *parts: str | int, size_bytes: int = 16) -> str:
    """`derive` for parts the engine writes itself ("out", 3): nothing to escape, so the same id,
    made without looking (the worker derives several ids per event)."""
    return _digest("/".join([event_key, *map(str, parts)]), size_bytes)


def _digest(material: str, size_bytes: int) -> str:
    return blake2b(material.encode(), digest_size=size_bytes, person=b"flow-engine").hexdigest()
