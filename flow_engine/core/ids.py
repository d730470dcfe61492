"""Ids derived from the event that caused them, so replaying an event reproduces every id."""

from __future__ import annotations

from hashlib import blake2b


def derive(event_key: str, *parts: object, size_bytes: int = 16) -> str:
    """A stable hex id for output `parts` of the event `event_key` (blake2b; 128 bits by default)."""
    material = "/".join([event_key, *map(str, parts)]).encode()
    return blake2b(material, digest_size=size_bytes, person=b"flow-engine").hexdigest()
