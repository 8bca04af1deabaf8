"""Environments over HTTP: the API, the public preview pages and the soundscapes.

* ``GET /api/environments`` and ``GET /api/environments/{id}`` (JSON, public);
* ``GET /environments/{id}``: a public preview page rendering the scene;
* ``GET /soundscapes/{id}.ogg``: the environment's ambience, Ogg Opus, made on first use and
  cached in the data folder; served by ``FileResponse`` (ETag, Range -> 206)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from environments import catalog
from media.soundscape import ensure_soundscape
from web import appkeys
from web.errors import json_response, not_found
from web.routing import PUBLIC, ApiRegistry

SOUNDSCAPE_CACHE = ("cache", "soundscapes")

ENVIRONMENT_SUMMARY = {
    "type": "object",
    "required": ["id", "name", "description"],
    "properties": {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "time_of_day": {"type": "string"},
        "motion_intensity": {"type": "number"},
        "max_people": {"type": "integer"},
        "preview_url": {"type": "string"},
        "soundscape_url": {"type": "string"},
    },
}


def _environment_or_404(env_id: str) -> catalog.Environment:
    env = catalog.get_environment(env_id)
    if env is None:
        raise not_found("no such environment")
    return env


def soundscape_dir(app: web.Application):
    return app[appkeys.DATA_DIR].path.joinpath(*SOUNDSCAPE_CACHE)


async def soundscape_file(app: web.Application, env: catalog.Environment):
    """The environment's soundscape file, generated in a worker thread on first use."""
    return await asyncio.to_thread(ensure_soundscape, env.soundscape, soundscape_dir(app), env.id)


def register(api: ApiRegistry, router: web.UrlDispatcher) -> None:
    @api.operation("GET", "/api/environments", summary="The environments sessions can use",
                   auth=PUBLIC, tags=["environments"],
                   response={"type": "object", "properties": {
                       "environments": {"type": "array", "items": ENVIRONMENT_SUMMARY}}})
    async def list_environments(request: web.Request) -> web.Response:
        return json_response(
            {"environments": [e.summary() for e in catalog.all_environments()]}
        )

    @api.operation("GET", "/api/environments/{env_id}", summary="One environment's definition",
                   auth=PUBLIC, tags=["environments"], errors=[404],
                   response={"type": "object", "properties": {
                       "environment": {"type": "object",
                                       "description": "the full definition (docs/environments.md)"}}})
    async def get_environment(request: web.Request) -> web.Response:
        env = _environment_or_404(request.match_info["env_id"])
        return json_response({"environment": env.to_dict()})

    async def preview_page(request: web.Request) -> web.Response:
        env = _environment_or_404(request.match_info["env_id"])
        html = request.app[appkeys.TEMPLATES].get_template("environment.html").render(
            env=env,
            definition=env.to_dict(),
            environments=catalog.all_environments(),
            user=request.get(appkeys.USER),
            csrf_token=request[appkeys.CSRF_TOKEN],
            csp_nonce=request[appkeys.CSP_NONCE],
        )
        return web.Response(text=html, content_type="text/html")

    async def soundscape(request: web.Request) -> web.StreamResponse:
        env = _environment_or_404(request.match_info["env_id"])
        path = await soundscape_file(request.app, env)
        return web.FileResponse(path, headers={
            "Content-Type": "audio/ogg",
            "Cache-Control": "public, max-age=86400",
            "Accept-Ranges": "bytes",
        })

    router.add_get("/environments/{env_id}", preview_page, name="environment-preview")
    router.add_get("/soundscapes/{env_id}.ogg", soundscape, name="soundscape")
