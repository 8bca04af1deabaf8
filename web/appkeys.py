"""Every piece of shared application state, declared once (aiohttp's "no singletons")."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:

    pass

CONFIG = web.AppKey("config", "Config")
DATA_DIR = web.AppKey("data_dir", "DataDir")
STORE = web.AppKey("store", "Store")
LIMITER = web.AppKey("login_limiter", "LoginLimiter")
TEMPLATES = web.AppKey("templates", "jinja2.Environment")
API = web.AppKey("api", "ApiRegistry")
VOICE = web.AppKey("voice", "VoiceHub")
KEYRING = web.AppKey("keyring", "LiveKeyring")  # web.app.LiveKeyring: reloads the key file
CRISIS = web.AppKey("crisis", "CrisisDirectory")  # groups.crisis: the crisis lines served

# Per-request state set by the middlewares and the API registry.
USER = web.RequestKey("user", object)  # therapy.accounts.User of the logged-in person
SESSION_ID = web.RequestKey("session_id", str)  # hashed login-session id
CSRF_TOKEN = web.RequestKey("csrf_token", str)
CSP_NONCE = web.RequestKey("csp_nonce", str)
BODY = web.RequestKey("body", object)  # the parsed, validated request body dataclass
