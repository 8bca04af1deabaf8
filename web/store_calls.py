"""Store calls from HTTP handlers, with a package's domain errors turned into API errors.

Each HTTP area (the practice, groups, ...) has its own ``api_error(exc)`` that knows its
domain's exceptions; :func:`store_call` runs a storage function through the app's store and
raises what that mapper makes of a failure (anything it does not know propagates, and the
error middleware answers it as a 500 for the operator to see)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiohttp import web

from web import appkeys
from web.errors import ApiError

ErrorMapper = Callable[[Exception], ApiError | None]


async def store_call(request: web.Request, fn, *, write: bool, to_api: ErrorMapper) -> Any:
    store = request.app[appkeys.STORE]
    try:
        return await (store.write(fn) if write else store.read(fn))
    except Exception as exc:
        err = to_api(exc)
        if err is None:
            raise
        raise err from None
