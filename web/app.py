"""The aiohttp application factory: ``create_app(config)``; all shared state behind AppKeys."""

from __future__ import annotations

import os
from pathlib import Path

import jinja2
from aiohttp import web

from media.ice import IcePolicy
from media.sfu import RoomRegistry
from therapy import schema as therapy_schema
from therapy.datadir import DataDir, prepare
from therapy.storage import Store
from web import (
    api_accounts,
    api_core,
    appkeys,
    environments_http,
    pages,
    practice_http,
    session_http,
)
from web.config import Config
from web.middleware import (
    access_log_middleware,
    csrf_middleware,
    error_middleware,
    security_headers_middleware,
    session_middleware,
)
from web.ratelimit import LoginLimiter
from web.routing import ApiRegistry
from web.voice import VoiceHub

WEB_DIR = Path(__file__).resolve().parent
PROJECT_DIR = WEB_DIR.parent


def migration_sets():
    """Every package's migrations, in dependency order."""
    return [therapy_schema.migrations]


def node_modules_dir() -> Path:
    return Path(os.environ.get("HAVEN_NODE_MODULES", PROJECT_DIR / "node_modules"))


def open_data_dir(config: Config) -> DataDir:
    return prepare(config.data_dir, migration_sets(), config.key_file)


def create_app(config: Config, data_dir: DataDir | None = None) -> web.Application:
    """Build the app. ``data_dir`` may be passed when the caller already prepared it
    (the CLI does, to refuse bad key files before anything listens)."""
    app = web.Application(
        middlewares=[
            access_log_middleware,
            security_headers_middleware,
            error_middleware,
            session_middleware,
            csrf_middleware,
        ],
        client_max_size=1024**2,
    )
    app[appkeys.CONFIG] = config
    app[appkeys.DATA_DIR] = data_dir or open_data_dir(config)
    app[appkeys.LIMITER] = LoginLimiter(
        config.login_failures_per_user,
        config.login_failures_per_address,
        config.login_window_seconds,
    )
    app[appkeys.TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    api = ApiRegistry(config.max_json_bytes)
    api_core.register(api)
    api_accounts.register(api)
    environments_http.register(api, app.router)
    practice_http.register(api, app.router)
    app[appkeys.API] = api
    api.add_routes(app.router)
    pages.register(app.router)
    session_http.register(app.router)
    app.router.add_static("/static/", WEB_DIR / "static", name="static")
    vendor = node_modules_dir()
    if (vendor / "three").is_dir():
        app.router.add_static("/vendor/three/", vendor / "three", name="vendor-three")
    app.router.add_get("/ws/signal", _signal, name="signal")
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_voice_ctx)
    return app


async def _signal(request: web.Request) -> web.StreamResponse:
    return await request.app[appkeys.VOICE].handle(request)


async def _store_ctx(app: web.Application):
    store = Store(app[appkeys.DATA_DIR].db_path)
    app[appkeys.STORE] = store
    yield
    store.close()


def ice_policy(config: Config) -> IcePolicy:
    if config.ice_loopback_only:
        return IcePolicy.loopback()
    return IcePolicy.server(public_address=config.public_address,
                            port_range=config.udp_port_range)


async def _voice_ctx(app: web.Application):
    config = app[appkeys.CONFIG]
    origins = {config.public_base_url.rstrip("/")} if config.public_base_url else set()
    hub = VoiceHub(app[appkeys.STORE], RoomRegistry(ice=ice_policy(config)), origins,
                   ice_servers=config.ice_servers)
    app[appkeys.VOICE] = hub
    yield
    await hub.close()
