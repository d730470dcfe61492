"""Ids derived from the event that caused them, so replaying an event reproduces every id."""

from __future__ import annotations

import uuid

_NAMESPACE = uuid.UUID("6f1d8a52-5b0e-4d51-9c1e-2b7f3e8a9c40")


def derive(event_key: str, *parts: object) -> str:
    """A stable UUID string for output `parts` of the event `event_key`."""
    return str(uuid.uuid5(_NAMESPACE, "/".join([event_key, *map(str, parts)])))
