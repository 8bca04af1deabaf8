"""Service-level API: health and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from web import appkeys
from web.errors import json_response
from web.routing import PUBLIC, ApiRegistry

VERSION = "0.1.0"
HEALTH_SCHEMA = {
    "type": "object",
    "required": ["status"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "problems": {"type": "array", "items": {
            "type": "object", "required": ["check", "message"],
            "properties": {"check": {"type": "string"}, "message": {"type": "string"}}}},
    },
}


def register(api: ApiRegistry) -> None:
    @api.operation("GET", "/healthz", summary="Liveness, database and key file check "
                   "(degraded: the server runs, but an operator must look at its log)",
                   auth=PUBLIC, tags=["service"], response=HEALTH_SCHEMA)
    async def healthz(request: web.Request) -> web.Response:
        await request.app[appkeys.STORE].read(lambda db: db.execute("SELECT 1").fetchone())
        problems = [p for p in [request.app[appkeys.KEYRING].health()] if p]
        if problems:
            return json_response({"status": "degraded", "problems": problems})
        return json_response({"status": "ok"})

    @api.operation("GET", "/api/openapi.json", summary="This API's OpenAPI 3 document",
                   auth=PUBLIC, tags=["service"])
    async def openapi(request: web.Request) -> web.Response:
        return json_response(request.app[appkeys.API].openapi("Haven API", VERSION))
