"""User text (task, mixture and model names) made safe for the Markdown summaries."""

from __future__ import annotations


def md(text: object) -> str:
    """``text`` safe inside Markdown and the HTML it becomes: no tags, no table breaks, no code spans."""
    # Only "<" can open a tag; escaping ">" and "&" too would print `-&gt;` for a name like `word->`.
    return str(text).replace("<", "&lt;").replace("|", "\\|").replace("`", "\\`")
