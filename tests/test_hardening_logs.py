"""Fault 9 of issue 11: an operator's log reads as Haven's own events.

``haven serve`` logged every aioice connectivity check at INFO. Libraries now log at WARNING
unless ``--log-level-for LOGGER=LEVEL`` asks for more; ``--log-level`` sets Haven's own.
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from media.e2ee import IdentityKeys
from media.voice_client import VoiceClient
from web import logs
from web.cli import build_parser

from .conftest import start_live_server
from .test_voice_e2e import wait_for
from .voice_support import tone


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.handlers[:], root.level,
             {n: logging.getLogger(n).level for n in (*logs.OWN_LOGGERS, "aioice", "aiortc")})
    yield
    root.handlers[:], level, levels = saved
    root.setLevel(level)
    for name, lvl in levels.items():
        logging.getLogger(name).setLevel(lvl)


def emitted(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["logger"] for line in stream.getvalue().splitlines()]


def emit_all():
    logging.getLogger("aioice.ice").info("Connection(0) Check CandidatePair(...) State.FROZEN")
    logging.getLogger("aiortc.rtcdtlstransport").info("State.CONNECTED")
    logging.getLogger("aioice.ice").warning("a library warning")
    logging.getLogger("haven.voice").info("voice.join")
    logging.getLogger("media.sfu").info("room opened")


def test_libraries_log_at_warning_by_default(restore_logging):
    out = io.StringIO()
    logs.configure(stream=out)
    emit_all()
    assert emitted(out) == ["aioice.ice", "haven.voice", "media.sfu"]
    assert "a library warning" in out.getvalue() and "FROZEN" not in out.getvalue()


def test_options_ask_for_more_or_less(restore_logging):
    args = build_parser().parse_args(["serve", "--log-level", "warning",
                                      "--log-level-for", "aioice=info"])
    out = io.StringIO()
    logs.configure(args.log_level, out, dict(args.log_level_for))
    emit_all()
    assert emitted(out) == ["aioice.ice", "aioice.ice"]  # haven's info is hidden now
    out = io.StringIO()
    args = build_parser().parse_args(["serve", "--log-level-for", "*=info"])
    logs.configure(args.log_level, out, dict(args.log_level_for))
    emit_all()
    assert emitted(out) == ["aioice.ice", "aiortc.rtcdtlstransport", "aioice.ice",
                            "haven.voice", "media.sfu"]


@pytest.mark.parametrize("bad", [["--log-level", "loud"], ["--log-level-for", "aioice"],
                                 ["--log-level-for", "aioice=chatty"]])
def test_bad_log_options_are_one_clear_error(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["serve", *bad])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "log" in err and ("level" in err or "LOGGER=LEVEL" in err)


@pytest.mark.slow
async def test_a_real_call_leaves_only_havens_own_events_in_the_log(tmp_path):
    """A ``haven serve`` with its defaults, two Python clients in a call."""
    server = start_live_server(tmp_path)
    try:
        made = server.haven("invite", "--data-dir", str(server.data_dir), "--room", "logs",
                            "--count", "2")
        assert made.returncode == 0, made.stderr
        clients = [VoiceClient(u, IdentityKeys.generate(), send_pcm=tone(f, 30))
                   for u, f in zip(made.stdout.split(), (500.0, 900.0), strict=True)]
        for c in clients:
            await c.start()
        await wait_for(lambda: all(c.summary.frames_received > 50 for c in clients), 30)
        for c in clients:
            await c.close()
        await wait_for(lambda: server.log_path.read_text().count('"voice.leave"') >= 2, 15)
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)
    lines = [json.loads(x) for x in server.log_path.read_text().splitlines()
             if x.startswith("{")]
    assert sum(1 for x in lines if x["event"] == "voice.join") == 2
    strangers = [x for x in lines if x["logger"].split(".")[0] not in logs.OWN_LOGGERS
                 and x["level"] in ("debug", "info")]
    assert strangers == [], strangers[:5]
