"""Environments over HTTP: the API, the public preview pages and the soundscapes."""

from __future__ import annotations

from aiohttp import web

from environments import catalog
from web.errors import json_response, not_found
from web.routing import PUBLIC, ApiRegistry


def register(api: ApiRegistry, router: web.UrlDispatcher) -> None:
    @api.operation("GET", "/api/environments", summary="The environments sessions can use",
                   auth=PUBLIC, tags=["environments"])
    async def list_environments(request: web.Request) -> web.Response:
        return json_response(
            {"environments": [e.summary() for e in catalog.all_environments()]}
        )

    @api.operation("GET", "/api/environments/{env_id}", summary="One environment's definition",
                   auth=PUBLIC, tags=["environments"], errors=[404])
    async def get_environment(request: web.Request) -> web.Response:
        env = catalog.get_environment(request.match_info["env_id"])
        if env is None:
            raise not_found("no such environment")
        return json_response({"environment": env.summary()})
