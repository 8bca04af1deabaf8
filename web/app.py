"""The aiohttp application factory: ``create_app(config)``; all shared state behind AppKeys."""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

import jinja2
from aiohttp import web

from groups import crisis, presence
from groups import schema as groups_schema
from media.ice import IcePolicy
from media.sfu import RoomRegistry
from therapy import schema as therapy_schema
from therapy.datadir import DataDir, prepare, ring_problem
from therapy.keyfile import KeyFileError, MasterKeyring, read_keyfile
from therapy.storage import Store
from web import (
    api_accounts,
    api_core,
    appkeys,
    environments_http,
    groups_api,
    groups_pages,
    pages,
    practice_api,
    practice_pages,
    safety_api,
    safety_pages,
    session_http,
)
from web.config import Config
from web.logs import log_event
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

log = logging.getLogger("haven.keys")


def migration_sets():
    """Every package's migrations, in dependency order."""
    return [therapy_schema.migrations, groups_schema.migrations]


def node_modules_dir() -> Path:
    return Path(os.environ.get("HAVEN_NODE_MODULES", PROJECT_DIR / "node_modules"))


def open_data_dir(config: Config) -> DataDir:
    return prepare(config.data_dir, migration_sets(), config.key_file)


def load_crisis_lines(config: Config) -> crisis.CrisisDirectory:
    """The shipped crisis lines with the operator's files applied (CrisisLinesError if one
    is malformed: the CLI reports it and does not start)."""
    return crisis.load(crisis.operator_files(config.data_dir, config.crisis_lines_file))


def create_app(config: Config, data_dir: DataDir | None = None,
               crisis_lines: crisis.CrisisDirectory | None = None) -> web.Application:
    """Build the app. ``data_dir`` may be passed when the caller already prepared it
    (the CLI does, to refuse bad key files before anything listens), as may the crisis
    lines (validated before anything listens, too)."""
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
    app[appkeys.CRISIS] = crisis_lines or load_crisis_lines(config)
    app[appkeys.TEMPLATES] = jinja2.Environment(
        loader=jinja2.FileSystemLoader(WEB_DIR / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )
    safety_pages.install_globals(app[appkeys.TEMPLATES], app[appkeys.CRISIS])
    api = ApiRegistry(config.max_json_bytes)
    api_core.register(api)
    api_accounts.register(api)
    environments_http.register(api, app.router)
    practice_api.register(api)
    practice_pages.register(app.router)
    groups_api.register(api)
    safety_api.register(api)
    app[appkeys.API] = api
    api.add_routes(app.router)
    pages.register(app.router)
    session_http.register(app.router)
    groups_pages.register(app.router)
    safety_pages.register(app.router)
    app.router.add_static("/static/", WEB_DIR / "static", name="static")
    vendor = node_modules_dir()
    if (vendor / "three").is_dir():
        app.router.add_static("/vendor/three/", vendor / "three", name="vendor-three")
    if (vendor / "@tabler" / "icons" / "icons").is_dir():
        # Tabler Icons (MIT): the room's dock and drawers use them as CSS masks.
        app.router.add_static("/vendor/tabler-icons/", vendor / "@tabler" / "icons" / "icons",
                              name="vendor-tabler-icons")
    app.router.add_get("/ws/signal", _signal, name="signal")
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_keyring_ctx)
    app.cleanup_ctx.append(_voice_ctx)
    return app


class LiveKeyring:
    """The running server's master keyring, reloaded when the key file changes on disk
    (``haven keys rotate`` rewrites it while the server runs; the new file holds every key
    still in use).

    A reloaded file must belong to this database (``therapy.datadir.ring_problem``: the
    recorded master key with its fingerprint, and every key a patient key is wrapped under)
    and agree with the loaded one on every key id both hold. Otherwise the server keeps the
    keyring it has, logs one error per change of the file, and reports ``degraded`` in
    /healthz until a good file is back: it never seals a record under a foreign key."""

    def __init__(self, data_dir: DataDir):
        self.data_dir = data_dir
        self.ring: MasterKeyring = data_dir.keyring
        self.problem: str | None = None
        self._seen = self._stamp()

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.data_dir.key_path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_ino, st.st_size)

    def current(self) -> MasterKeyring:
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            self._reload(stamp is not None)
        return self.ring

    def _reload(self, exists: bool) -> None:
        path = self.data_dir.key_path
        problem = None if exists else f"key file {path} is missing"
        ring = None
        if exists:
            try:
                ring = read_keyfile(path)
            except KeyFileError as exc:
                problem = str(exc)
        if ring is not None:
            problem = self._mismatch(ring)
        if problem is None:
            if self.problem is not None:
                log_event(log, "keyring.reload_recovered", level=logging.WARNING)
            self.ring = self.data_dir.keyring = ring
            self.problem = None
            return
        self.problem = problem
        log_event(log, "keyring.reload_refused", level=logging.ERROR, reason=(
            f"{problem}; the server keeps the key it had and seals nothing with the new "
            f"file. Put the right key file back at {path}"))

    def _mismatch(self, ring: MasterKeyring) -> str | None:
        for key_id in ring.keys.keys() & self.ring.keys.keys():
            if ring.keys[key_id] != self.ring.keys[key_id]:
                return f"key file {self.data_dir.key_path} holds another key under id {key_id}"
        conn = sqlite3.connect(f"file:{self.data_dir.db_path}?mode=ro", uri=True, timeout=5)
        try:
            found = ring_problem(conn, ring)
        finally:
            conn.close()
        if found is not None:
            return f"key file {self.data_dir.key_path} does not belong to this database ({found})"
        return None

    def health(self) -> dict | None:
        """For /healthz (public): what is wrong, without paths or key ids."""
        self.current()
        if self.problem is None:
            return None
        return {"check": "key_file", "message": "the key file on disk cannot be used (see the "
                "server log); the server keeps the key it started with"}


async def _keyring_ctx(app: web.Application):
    app[appkeys.KEYRING] = LiveKeyring(app[appkeys.DATA_DIR])
    yield


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
                   keyring=app[appkeys.KEYRING],
                   ice_servers=config.ice_servers,
                   facilitator_grace_s=config.group_facilitator_grace_s)
    # Nobody is in a voice room yet: presence left over from a server that stopped with people
    # in a meeting would hold back group notes until they came and went again.
    await app[appkeys.STORE].write(presence.clear_all)
    app[appkeys.VOICE] = hub
    yield
    await hub.close()
