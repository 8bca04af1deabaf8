"""Browser form bodies, read safely: whatever arrives, a clear 400 and never a 500.

``aiohttp``'s ``request.post()`` raises a zoo of exceptions on a malformed body (a multipart
body without a boundary or cut short, bytes that are not UTF-8, an unknown charset, a bad
part header). Every form in Haven is read through :func:`read_form`, which turns them all
into one ``ApiError`` (400 ``malformed_form``): JSON for the API, the readable error page for
the browser (web.middleware.error_middleware). Only text fields are kept; file parts are
dropped (no Haven form takes a file).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from web.errors import ApiError

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def malformed_form() -> ApiError:
    return ApiError(400, "malformed_form",
                    "the form could not be read; reload the page and try again")


async def read_form(request: web.Request) -> dict[str, str]:
    """The text fields of a form body ({} for a body that is not a form)."""
    if request.content_type not in FORM_TYPES:
        return {}
    try:
        form = await request.post()
    except (ValueError, LookupError, HttpProcessingError, AssertionError):
        # ValueError covers UnicodeDecodeError and aiohttp's multipart parse errors;
        # LookupError an unknown charset; HttpProcessingError a malformed part header.
        raise malformed_form() from None
    return {k: v for k, v in form.items() if isinstance(v, str)}
