"""JSON text as the engine writes it, made by the C encoder of the standard library directly.

`compact(value)` is `json.dumps(value, ensure_ascii=False, separators=(",", ":"))`, the form of every
JSON value the engine keeps in Redis or puts in an output (wait states, lane items, template content,
webhook bodies, the commit's ops); `plain(value)` is `json.dumps(value)`, the form SQLAlchemy sends
JSON columns in. Same text, character for character; what is saved is the JSONEncoder that
json.dumps builds per call when given options, and the Python layers around the C encoder (about
17,000 of the 39,000 instructions of encoding a webhook body): the worker encodes several values
per event. Without the C encoder (another Python implementation), json.dumps itself is used.

One difference, on data the engine never makes: a value that contains itself raises RecursionError
instead of ValueError (the check json.dumps does for it needs a fresh dict per call).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json import encoder as _encoder
from typing import Any

_reject = json.JSONEncoder().default  # TypeError naming the type, as json.dumps raises


def _c_encoder(ensure_ascii: bool, item_separator: str, key_separator: str) -> Callable[[Any], str] | None:
    make = getattr(_encoder, "c_make_encoder", None)  # None, like the others, without the C module
    strings = getattr(_encoder, "c_encode_basestring_ascii" if ensure_ascii else "c_encode_basestring", None)
    if make is None or strings is None:
        return None
    encode = make(None, _reject, strings, None, key_separator, item_separator, False, False, True)

    def text(value: Any) -> str:
        return "".join(encode(value, 0))

    return text


def _compact_dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


compact: Callable[[Any], str] = _c_encoder(False, ",", ":") or _compact_dumps
plain: Callable[[Any], str] = _c_encoder(True, ", ", ": ") or json.dumps
