"""Service-level API: health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from web import appkeys
from web.errors import json_response
from web.routing import PUBLIC, ApiRegistry

VERSION = "0.1.0"


def register(api: ApiRegistry) -> None:
    @api.operation("GET", "/healthz", summary="Liveness and database check", auth=PUBLIC,
                   tags=["service"],
                   response={"type": "object", "properties": {"status": {"type": "string"}}})
    async def healthz(request: web.Request) -> web.Response:
        await request.app[appkeys.STORE].read(lambda db: db.execute("SELECT 1").fetchone())
        return json_response({"status": "ok"})

    @api.operation("GET", "/api/openapi.json", summary="This API's OpenAPI 3 document",
                   auth=PUBLIC, tags=["service"])
    async def openapi(request: web.Request) -> web.Response:
        return json_response(request.app[appkeys.API].openapi("Haven API", VERSION))
