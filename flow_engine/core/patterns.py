"""User-supplied reply patterns, compiled with RE2 so matching is linear in the input."""

from __future__ import annotations

from typing import Any

import re2

from flow_engine.core.errors import PatternError as PatternError  # raised here; importable from here

_OPTIONS = re2.Options()
_OPTIONS.case_sensitive = False
_OPTIONS.log_errors = False  # RE2 would otherwise print every bad pattern to stderr


def compile_pattern(pattern: str) -> Any:
    """A case-insensitive RE2 pattern; raises PatternError with RE2's reason."""
    try:
        return re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from None
    except UnicodeEncodeError:
        raise PatternError("not valid Unicode (lone surrogate)") from None
