"""Structured logging: one JSON object per line, and nothing sensitive in it.

Call ``log_event(logger, "event", field=value, ...)``. Fields whose names suggest secrets or
health information are dropped before formatting, whatever the caller passes."""

from __future__ import annotations

import argparse
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


# Haven's own loggers ("haven.voice", "media.sfu", ...): everything else is a library.
OWN_LOGGERS = ("haven", "therapy", "environments", "groups", "media", "web")
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL}
LIBRARY_LEVEL = logging.WARNING


def parse_level(text: str) -> int:
    """A level name for ``--log-level`` (argparse type)."""
    try:
        return LEVELS[text.strip().lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown log level {text!r}; use one of {', '.join(LEVELS)}") from None


def parse_logger_level(text: str) -> tuple[str, int]:
    """``NAME=LEVEL`` for ``--log-level-for`` (argparse type); NAME ``*`` is every library."""
    name, sep, level = text.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected LOGGER=LEVEL (e.g. aioice=info), got {text!r}")
    return name.strip(), parse_level(level)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--log-level`` and ``--log-level-for`` for a command that serves."""
    parser.add_argument("--log-level", type=parse_level, default=logging.INFO,
                        metavar="LEVEL",
                        help="Haven's own events: debug, info (default), warning, error")
    parser.add_argument("--log-level-for", type=parse_logger_level, action="append",
                        default=[], metavar="LOGGER=LEVEL",
                        help="one logger and its children, e.g. aioice=info or "
                        "aiohttp.server=debug ('*' for every library); libraries log at "
                        "warning otherwise. Repeatable")


def configure(level: int = logging.INFO, stream=None,
              loggers: dict[str, int] | None = None) -> None:
    """One JSON line per event on ``stream`` (stderr): Haven's own loggers at ``level``,
    libraries (aioice, aiortc, aiohttp, ...) at WARNING unless ``loggers`` names them
    (``{"aioice": logging.INFO}``; ``"*"`` sets every library)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    loggers = dict(loggers or {})
    root.setLevel(loggers.pop("*", LIBRARY_LEVEL))
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # aiohttp's own access log prints raw paths (which may hold tokens): ours replaces it.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name, named_level in loggers.items():
        logging.getLogger(name).setLevel(named_level)
