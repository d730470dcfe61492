"""Placeholders in text fields: {{contact.name}}, {{contact.phone}}, {{contact.attributes.KEY}},
{{message.text}}. A missing value renders as empty text."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z0-9_.\-]+)\s*\}\}")


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def render(text: str, values: Mapping[str, Any]) -> str:
    """Replace each placeholder by its value from the flat `values` mapping."""
    if "{{" not in text:
        return text

    def lookup(match: re.Match[str]) -> str:
        return _as_text(values.get(match.group(1)))

    return _PLACEHOLDER.sub(lookup, text)


def has_placeholders(value: Any) -> bool:
    """Whether any string inside a JSON value holds a placeholder (checked once, at parse time)."""
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, list):
        return any(has_placeholders(item) for item in value)
    if isinstance(value, dict):
        return any(has_placeholders(item) for item in value.values())
    return False


def render_deep(value: Any, values: Mapping[str, Any]) -> Any:
    """Render every string inside a JSON value (template components, webhook data, media)."""
    if isinstance(value, str):
        return render(value, values)
    if isinstance(value, list):
        return [render_deep(item, values) for item in value]
    if isinstance(value, dict):
        return {key: render_deep(item, values) for key, item in value.items()}
    return value


def placeholder_values(name: str, phone: str, attributes: Mapping[str, Any], text: str) -> dict[str, Any]:
    values: dict[str, Any] = {"contact.name": name, "contact.phone": phone, "message.text": text}
    for key, value in attributes.items():
        values[f"contact.attributes.{key}"] = value
    return values
