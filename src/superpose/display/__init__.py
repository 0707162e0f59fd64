"""Ground-floor presentation helpers: the console (stderr progress and warnings), Markdown-safe text, figure files."""
