"""`superpose serve`: a local page to explore one prompt at a time, on one warm model.

service.py holds what the page asks of the model (prompts, exact scores, a λ curve, top outputs, an
export to a probe config); app.py is the web layer (FastAPI, a JSON API, the static page); static/ is
the page (HTML, script, style, and Chart.js vendored from its npm package, so it works offline).
"""

from superpose.explore.app import create_app, serve
from superpose.explore.service import Explorer

__all__ = ["Explorer", "create_app", "serve"]
