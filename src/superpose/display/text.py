"""User text (task, mixture and model names) made safe for the Markdown summaries."""

from __future__ import annotations

import html


def md(text: object) -> str:
    """``text`` safe inside Markdown and the HTML it becomes: no tags, no table breaks, no code spans."""
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("`", "\\`")
