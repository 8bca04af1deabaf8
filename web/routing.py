"""The JSON API's route registry: auth rules, body parsing and the OpenAPI document in one place.

Each API operation is declared once with ``@api.operation(...)``; the registry adds it to the
aiohttp router wrapped with its authorisation check (done on the server for every request)
and describes it in ``/api/openapi.json``. Request bodies are parsed at the edge into
self-validating dataclasses (a ``parse(dict)`` classmethod and a JSON ``schema``).

The document is what the server does (tests/test_contract_fuzz.py holds it to that):

* a path parameter written ``{name:int}`` is routed only for 1 to 15 digits and declared an
  integer; any other ``{name}`` is declared an id (letters, digits, ``.``, ``_``, ``-``);
* the success status is the operation's ``status`` (201 for what creates something);
* a state-changing method needs the ``X-CSRF-Token`` header (a header parameter, not a
  security scheme: it shows the request came from Haven's pages, not who sent it);
* errors every operation of its kind can give are added to its own ``errors``: 400 and
  403 (CSRF or origin refused) for every state-changing method, 401 and 403 behind a login,
  404 with path parameters, 400 with query parameters, 400/413/415/422 with a body;
* unknown body fields are refused (422), and the schema says so (``additionalProperties``).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from media.signaling import exceeds_depth
from therapy.accounts import Role, User, ValidationError
from web import appkeys
from web.errors import ApiError, bad_request, forbidden, unauthorized

PUBLIC = "public"  # no login needed
MAX_JSON_DEPTH = 16  # arrays/objects inside each other in a request body
ANY_USER = frozenset(Role)  # any logged-in user

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Operation:
    method: str
    path: str  # as declared, e.g. "/api/appointments/{appointment_id:int}"
    summary: str
    handler: Handler
    auth: str | frozenset[Role]
    body: type | None
    response: dict | None
    tags: tuple[str, ...]
    errors: tuple[int, ...]
    status: int = 200
    query: dict[str, dict] | None = None

    @property
    def unsafe(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE")

    def path_params(self) -> list[tuple[str, str]]:
        """(name, kind) of each path parameter, kind "int" or "id"."""
        return [(name, kind or "id") for name, kind in PARAM_RE.findall(self.path)]

    @property
    def route_path(self) -> str:
        """The path for aiohttp's router."""
        return PARAM_RE.sub(lambda m: "{" + m[1] + (r":\d{1,15}}" if m[2] == "int" else "}"),
                            self.path)

    @property
    def doc_path(self) -> str:
        """The path in the OpenAPI document."""
        return PARAM_RE.sub(lambda m: "{" + m[1] + "}", self.path)


PARAM_RE = re.compile(r"\{(\w+)(?::(int))?\}")
INT_PARAM = {"type": "integer", "minimum": 0, "maximum": 10**15 - 1}
ID_PARAM = {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}
# Not a security scheme: it proves the request came from Haven's page, not who sent it.
CSRF_PARAM = {
    "name": "X-CSRF-Token", "in": "header", "required": True,
    "description": "the CSRF token: the value of the haven_csrf cookie, which pages carry in "
                   "<meta name=\"csrf-token\"> and which a login reply returns (403 if wrong)",
    "schema": {"type": "string", "minLength": 20, "maxLength": 64},
}


def current_user(request: web.Request) -> User | None:
    return request.get(appkeys.USER)


def require_user(request: web.Request, roles: Iterable[Role] = ANY_USER) -> User:
    user = current_user(request)
    if user is None:
        raise unauthorized()
    if user.role not in frozenset(roles):
        raise forbidden(f"this needs the role {' or '.join(sorted(r.value for r in roles))}")
    return user


async def read_json(request: web.Request, max_bytes: int) -> dict:
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "payload_too_large", f"the body must be under {max_bytes} bytes")
    raw = await request.content.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ApiError(413, "payload_too_large", f"the body must be under {max_bytes} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise bad_request(f"the body is not valid JSON: {exc.__class__.__name__}",
                          "malformed_json") from None
    except RecursionError:
        raise bad_request("the body nests too deeply", "malformed_json") from None
    if not isinstance(data, dict):
        raise bad_request("the body must be a JSON object", "malformed_json")
    if exceeds_depth(data, MAX_JSON_DEPTH):
        raise bad_request("the body nests too deeply", "malformed_json")
    return data


def parse_body(cls: type, data: dict) -> Any:
    allowed = set(cls.schema.get("properties", {}))
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ApiError(422, "invalid_field", f"unknown field {unknown[0]!r}", field=unknown[0])
    try:
        return cls.parse(data)
    except ValidationError as exc:
        raise ApiError(422, "invalid_field", exc.message, field=exc.field) from None


class ApiRegistry:
    def __init__(self, max_json_bytes: int = 64 * 1024):
        self.operations: list[Operation] = []
        self.max_json_bytes = max_json_bytes

    def operation(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        auth: str | frozenset[Role] | Iterable[Role] = ANY_USER,
        body: type | None = None,
        response: dict | None = None,
        tags: Iterable[str] = (),
        errors: Iterable[int] = (),
        status: int = 200,
        query: dict[str, dict] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Declare an operation. ``status``: its success status; ``query``: its query
        parameters (name: JSON schema); ``errors``: statuses beyond those every operation
        of its kind has (see the module's docstring)."""
        if auth != PUBLIC:
            auth = frozenset(auth)

        def decorate(fn: Handler) -> Handler:
            @functools.wraps(fn)
            async def wrapped(request: web.Request) -> web.StreamResponse:
                if auth != PUBLIC:
                    require_user(request, auth)
                if body is not None:
                    data = await read_json(request, self.max_json_bytes)
                    request[appkeys.BODY] = parse_body(body, data)
                return await fn(request)

            self.operations.append(
                Operation(method.upper(), path, summary, wrapped, auth, body, response,
                          tuple(tags), tuple(errors), status, query)
            )
            return wrapped

        return decorate

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for op in self.operations:
            router.add_route(op.method, op.route_path, op.handler)

    def openapi(self, title: str, version: str) -> dict:
        error_schema = {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {
                    "type": "object",
                    "required": ["code", "message"],
                    "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                }
            },
        }
        paths: dict[str, dict] = {}
        for op in self.operations:
            params = [
                {"name": name, "in": "path", "required": True,
                 "schema": dict(INT_PARAM if kind == "int" else ID_PARAM)}
                for name, kind in op.path_params()
            ]
            params += [{"name": name, "in": "query", "required": False, "schema": schema}
                       for name, schema in (op.query or {}).items()]
            if op.unsafe:
                params.append(CSRF_PARAM)
            responses: dict[str, Any] = {
                str(op.status): {
                    "description": "Created" if op.status == 201 else "OK",
                    "content": {"application/json": {"schema": op.response or {"type": "object"}}},
                }
            }
            codes = set(op.errors)
            if op.unsafe:
                codes |= {400, 403}  # a malformed form body; CSRF token or origin refused
            if op.body is not None:
                codes |= {400, 413, 415, 422}
            if op.auth != PUBLIC:
                codes |= {401, 403}
            if op.path_params():
                codes |= {404}
            if op.query:
                codes |= {400}
            for code in sorted(codes):
                responses[str(code)] = {
                    "description": "Error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            entry: dict[str, Any] = {
                "summary": op.summary,
                "operationId": op.handler.__name__,
                "responses": responses,
            }
            if op.tags:
                entry["tags"] = list(op.tags)
            if params:
                entry["parameters"] = params
            if op.auth == PUBLIC:
                entry["security"] = []
            else:
                entry["x-haven-roles"] = sorted(r.value for r in op.auth)
            if op.body is not None:
                schema = {"additionalProperties": False, **op.body.schema}
                entry["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": schema}},
                }
            paths.setdefault(op.doc_path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.0.3",
            "info": {"title": title, "version": version},
            "paths": paths,
            "components": {
                "schemas": {"Error": error_schema},
                "securitySchemes": {
                    "session": {"type": "apiKey", "in": "cookie", "name": "haven_session"},
                },
            },
            "security": [{"session": []}],
        }
