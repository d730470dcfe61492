"""Media kinds of `send_media` assets (SPEC §5.1)."""

from __future__ import annotations

# send_media "asset": the kind follows the link's file extension; anything else is an image, as the
# platform's builder flows expect (SPEC §5.1).
ASSET_KINDS = {
    **dict.fromkeys(("jpg", "jpeg", "png", "webp"), "image"),
    **dict.fromkeys(("mp4", "3gp"), "video"),
    **dict.fromkeys(("mp3", "ogg", "opus", "amr", "aac", "m4a"), "audio"),
    **dict.fromkeys(("pdf", "doc", "docx", "xls", "xlsx", "ppt", "pptx", "txt", "csv"), "document"),
}


def asset_kind(link: str) -> str:
    """The media kind of an asset link, from the extension of its path (host, query and fragment
    ignored)."""
    path = link.split("#", 1)[0].split("?", 1)[0]
    if "://" in path:  # scheme://host/path: the host's dots are no extension
        after_scheme = path.split("://", 1)[1]
        path = after_scheme.split("/", 1)[1] if "/" in after_scheme else ""
    name = path.rsplit("/", 1)[-1]
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return ASSET_KINDS.get(extension, "image")
