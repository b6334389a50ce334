"""Jinja2 templates (autoescaped) and the one helper that renders a page."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

__all__ = ["STATIC", "TEMPLATES", "environment", "render"]

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"


def _percent(value: Any, digits: int = 0) -> str:
    if not isinstance(value, int | float):
        return "–"
    return f"{100 * value:.{digits}f} %"


@functools.cache
def environment() -> Environment:
    """The pages' template environment: every value is HTML-escaped unless marked safe."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["percent"] = _percent
    from importlib.metadata import PackageNotFoundError, version

    try:
        env.globals["asset_version"] = version("landscape")
    except PackageNotFoundError:
        env.globals["asset_version"] = "0"
    return env


def render(
    request: Request, template: str, status_code: int = 200, /, **context: Any
) -> HTMLResponse:
    """Render ``template`` with the caller, CSRF token and active page filled in."""
    who = getattr(request.state, "identity", None)
    context.setdefault("who", who)
    context.setdefault("csrf", getattr(request.state, "csrf", "") or "")
    context.setdefault("page", template.removesuffix(".html"))
    context.setdefault("title", None)
    html = environment().get_template(template).render(request=request, **context)
    response = HTMLResponse(html, status_code=status_code)
    response.headers.setdefault("Cache-Control", "no-store")
    return response
