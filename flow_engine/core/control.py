"""Conversation control (SPEC §5.1): the engine-wide defaults a flow may override, and the checks
that keep a contact from being stranded (expiry, interrupt words) or a run from looping."""

from __future__ import annotations

from dataclasses import dataclass

from flow_engine.core.graph import Flow
from flow_engine.core.intents import normalize_word


@dataclass(frozen=True)
class Control:
    """Settings of conversation control, passed to the interpreter (which reads no environment)."""

    max_steps: int = 1000  # steps without hearing from the contact before the run fails (loop-limit)
    expire_after_min: float = 1440  # a paused-for-reply run expires after this (WhatsApp's 24 h window)
    interrupt_words: tuple[str, ...] = ()  # normalized with normalize_word
    max_held: int = 50  # messages held per contact during a delay; the next one goes to the DLQ
    handoff_ttl_min: float = 1440  # a contact handed to an agent is released after this (SPEC §5.3)

    @classmethod
    def of(cls, max_steps: int, expire_after_min: float, interrupt_words: str, max_held: int,
           handoff_ttl_min: float = 1440) -> Control:
        """From settings: `interrupt_words` comma-separated, as FLOW_ENGINE_INTERRUPT_WORDS."""
        words = tuple(w for w in (normalize_word(word) for word in interrupt_words.split(",")) if w)
        return cls(max_steps, expire_after_min, words, max_held, handoff_ttl_min)

    @property
    def handoff_ttl_ms(self) -> int:
        return round(self.handoff_ttl_min * 60_000)

    def expire_ms(self, flow: Flow) -> int:
        """How long a run of `flow` may wait for a reply."""
        minutes = flow.expire_after_min if flow.expire_after_min is not None else self.expire_after_min
        return round(minutes * 60_000)

    def interrupts(self, flow: Flow | None, text: str) -> bool:
        """Whether `text` as a whole is one of the interrupt words of `flow` (else the default ones)."""
        words = flow.interrupt if flow is not None and flow.interrupt is not None else self.interrupt_words
        return bool(words) and normalize_word(text) in words


DEFAULT_CONTROL = Control()
