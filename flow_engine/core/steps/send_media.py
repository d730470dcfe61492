"""`{"type": "action", "action": "send_media", "media": {kind, link, caption?}}` or `"asset": LINK`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.assets import asset_kind
from flow_engine.core.steps.base import Invalid, NoJumps, ParseContext
from flow_engine.core.template import has_placeholders


@dataclass(frozen=True)
class SendMedia(NoJumps):
    media: Mapping[str, Any]  # {"kind", "link", "caption"?}
    templated: bool = False
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        execution.send("media", execution.fill(self.media, self.templated))

    def describe(self) -> str:
        return f"{self.media.get('kind', 'media')}: {self.media.get('link', '')}"


def parse(raw: Mapping[str, Any], where: str, context: ParseContext) -> SendMedia | Invalid:
    media = raw.get("media")
    if media is None and isinstance(raw.get("asset"), str):
        media = {"kind": raw.get("kind") or asset_kind(raw["asset"]), "link": raw["asset"]}
        if isinstance(raw.get("caption"), str):
            media["caption"] = raw["caption"]
    if not isinstance(media, dict):
        return Invalid(context.problem(where, 'send_media requires "media" {kind, link} or "asset"'))
    for name in ("kind", "link"):
        if not isinstance(media.get(name), str) or not media[name]:
            context.problem(f"{where}.media.{name}", "required (a non-empty string)")
    if "caption" in media and not isinstance(media["caption"], str):
        context.problem(f"{where}.media.caption", "must be a string")
    return SendMedia(dict(media), has_placeholders(media))
