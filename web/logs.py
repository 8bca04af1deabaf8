"""Structured logging: one JSON object per line, and nothing sensitive in it.

Call ``log_event(logger, "event", field=value, ...)``. Fields whose names suggest secrets or
health information are dropped before formatting, whatever the caller passes."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

SENSITIVE = ("password", "token", "secret", "key", "note", "body", "text", "cookie", "csrf")


def _safe_fields(fields: dict) -> dict:
    return {
        k: v for k, v in fields.items() if not any(s in k.lower() for s in SENSITIVE)
    }


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields) -> None:
    logger.log(level, event, extra={"haven_fields": _safe_fields(fields)})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(getattr(record, "haven_fields", {}))
        if record.exc_info:
            # The exception type and where it happened; not its message, which may echo input.
            etype, _, tb = record.exc_info
            frames = []
            while tb is not None:
                frames.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
                tb = tb.tb_next
            out["exc_type"] = getattr(etype, "__name__", str(etype))
            out["where"] = frames[-3:]
        return json.dumps(out, default=str)


def configure(level: int = logging.INFO, stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's own access log prints raw paths (which may hold tokens): ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
