"""The web GUI: server-rendered Jinja2 pages (autoescaped) over the API, with a little plain
JavaScript from ``static/`` (no CDN, no inline script: the pages' CSP forbids it).

``create_site(settings)`` is what ``landscape serve`` runs: the API of
:func:`landscape.api.create_app` plus the gallery, file detail, review queue, upload and
dashboard pages and their login.
"""

from __future__ import annotations

from ._site import create_site

__all__ = ["create_site"]
