"""The engine's secret and what it signs, so that a producer of nf:incoming cannot speak for the engine.

- **Timer resumes.** The timer loop's pop script (lua/pop_due.lua) signs each resume it publishes
  with `sig`; the bridge hands on only resumes whose `sig` checks, so a resume cannot be forged by
  guessing a token (a guessed one is counted as ignored `forged-resume`). Every timer in the ZSET is
  signed when it comes due, whoever wrote it, so timers written before signing existed still fire.
- **DLQ replays.** `replay_*` fields make the engine re-run one event under its original ids and skip
  the duplicate check; `flow-engine dlq replay` signs them (`replay_sig`, over every field of the
  entry), and the bridge refuses them unsigned.

The secret lives in Redis (`fe:secret`, created by the first process that needs it, 256 random bits),
where every engine process reads it and no stream shows it. Deleting it invalidates resumes in flight.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from flow_engine.adapters.keys import SECRET
from flow_engine.adapters.scripts import RedisClient

RESUME_SIG = "sig"
REPLAY_SIG = "replay_sig"


def load_secret(client: RedisClient) -> bytes:
    """The engine's secret, created on first use (SET NX: every process ends up with the same one)."""
    client.set(SECRET, secrets.token_hex(32), nx=True)
    value = client.get(SECRET)
    if value is None:  # deleted between the two calls: try once more
        client.set(SECRET, secrets.token_hex(32), nx=True)
        value = client.get(SECRET)
    return value.encode() if isinstance(value, str) else bytes(value)


def _bytes(value: str | bytes) -> bytes:
    return value.encode(errors="surrogateescape") if isinstance(value, str) else value


def resume_sig(secret: bytes, member: str | bytes) -> str:
    """The signature pop_due.lua gives a published timer: SHA-1 keyed at both ends and nested (Redis's
    Lua has SHA-1 and nothing better; nesting rules out length extension)."""
    inner = hashlib.sha1(secret + b"i" + _bytes(member)).hexdigest().encode()
    return hashlib.sha1(secret + b"o" + inner).hexdigest()


def resume_signed(secret: bytes, fields: Mapping[bytes, bytes]) -> bool:
    """Whether an entry with `engine_resume` was published by the timer loop."""
    member, sig = fields.get(b"engine_resume"), fields.get(RESUME_SIG.encode())
    if member is None or sig is None:
        return False
    return hmac.compare_digest(resume_sig(secret, member).encode(), sig)


def replay_sig(secret: bytes, fields: Mapping[str, str | bytes] | Mapping[bytes, bytes]) -> str:
    """HMAC-SHA256 over every field but `replay_sig` (names sorted, each part length-prefixed)."""
    mac = hmac.new(secret, digestmod="sha256")
    parts = sorted((_bytes(name), _bytes(value)) for name, value in fields.items())
    for name, value in parts:
        if name != REPLAY_SIG.encode():
            mac.update(len(name).to_bytes(4, "big") + name + len(value).to_bytes(8, "big") + value)
    return mac.hexdigest()


_REPLAY_NAMES = frozenset({b"replay_index", b"replay_key", b"replay_of", REPLAY_SIG.encode()})


def is_replay(fields: Mapping[bytes, bytes]) -> bool:
    """Whether an entry carries replay fields (the ones `flow-engine dlq replay` writes)."""
    return not _REPLAY_NAMES.isdisjoint(fields)


def replay_signed(secret: bytes, fields: Mapping[bytes, bytes]) -> bool:
    """Whether the `replay_*` fields of an entry were written by `flow-engine dlq replay`."""
    sig = fields.get(REPLAY_SIG.encode())
    return sig is not None and hmac.compare_digest(replay_sig(secret, fields).encode(), sig)
