"""`{"type": "action", "action": "send_media", "media": {kind, link, caption?}}` or `"asset": LINK`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flow_engine.core.steps.base import Invalid, ParseContext
from flow_engine.core.template import has_placeholders

# send_media "asset": the kind follows the link's file extension; anything else is an image, as the
# platform's builder flows expect (SPEC §5.1).
ASSET_KINDS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "opus", "amr", "aac", "m4a"), "audio"),
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv"), "document"),
}


def asset_kind(link: str) -> str:
    """The media kind of an asset link, from the extension of its path (query and fragment ignored)."""
    path = link.split("#", 1)[0].split("?", 1)[0]
    name = path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ASSET_KINDS.get(extension, "image")


@dataclass(frozen=True)
class SendMedia:
    media: Mapping[str, Any]  # {"kind", "link", "caption"?}
    templated: bool = False
    falls_through = True

    def run(self, execution: Any, path: str, index: int) -> None:
        execution.send("media", execution.fill(self.media, self.templated))

    def describe(self) -> str:
        return f"{self.media.get('kind', 'media')}: {self.media.get('link', '')}"

    def jumps(self) -> tuple[tuple[str, str], ...]:
        return ()


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
