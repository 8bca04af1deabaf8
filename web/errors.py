"""Errors as the API and the browser see them.

Every API error is ``{"error": {"code": ..., "message": ...}}`` with a 4xx/5xx status; the
browser gets a readable page with the same message."""

from __future__ import annotations

import json

from aiohttp import web


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra

    def body(self) -> dict:
        err = {"code": self.code, "message": self.message}
        err.update(self.extra)
        return {"error": err}


def bad_request(message: str, code: str = "invalid_request", **extra) -> ApiError:
    return ApiError(400, code, message, **extra)


def unauthorized(message: str = "log in first") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(message: str = "you are not allowed to do that") -> ApiError:
    return ApiError(403, "forbidden", message)


def not_found(message: str = "not found") -> ApiError:
    return ApiError(404, "not_found", message)


def conflict(message: str, code: str = "conflict") -> ApiError:
    return ApiError(409, code, message)


def json_response(data: object, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        text=json.dumps(data, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: ApiError, headers: dict | None = None) -> web.Response:
    return json_response(err.body(), status=err.status, headers=headers)


# aiohttp's own HTTP exceptions (404 for unknown paths, 405, 413) mapped to our codes.
HTTP_CODES = {
    400: "invalid_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
