"""Therapy practice over HTTP: patients, appointments, waiting room, consent, notes, audit."""

from __future__ import annotations

from aiohttp import web

from web.routing import ApiRegistry


def register(api: ApiRegistry, router: web.UrlDispatcher) -> None:
    """Add the practice's API operations and pages (filled in by the practice issue)."""
