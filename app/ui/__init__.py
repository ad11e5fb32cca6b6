"""The browser UI blueprint (server-rendered, HTMX), mounted at /ui.

Pages: overview, jobs (list, form, detail), runs, queues. Each page template names the blocks
that htmx may ask for alone (see app.ui.render); actions answer with the block they change,
or redirect when the request came from a plain form.
"""

from flask import Blueprint

bp = Blueprint("ui", __name__, url_prefix="/ui", template_folder="../templates")

from app.ui import audit_views, display, job_views, login, views  # noqa: E402,F401  (views register on import)
