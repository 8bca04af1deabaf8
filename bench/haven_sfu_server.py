#!/usr/bin/env python3
"""Haven's SFU core as its own process, with a minimal HTTP signaling endpoint
for the benchmark only (production signaling is the WebSocket layer in web/).

  POST /publish   {room, display, sdp}   -> {feed, pc, sdp, type}
        joins participant "pub:<display>" (sender_id=display); offer = m-line 0 only
  POST /subscribe {room, feeds, sdp}     -> {pc, sdp, type, mids: {mid: feed}}
        joins a listen-only participant; its sender_id is the one publisher of
        the room missing from `feeds` (conference mode: a peer does not hear
        itself), or a fresh id when `feeds` is every publisher (pub/sub mode)
  POST /close     {pcs}                  -> {closed}
  GET  /health                           -> registry stats

  python bench/haven_sfu_server.py --port 8090 [--pidfile F]

Listens on 127.0.0.1 only; ICE is restricted to 127.0.0.1 (IcePolicy.loopback()).
"""

from __future__ import annotations

import argparse
import gc
import itertools
import logging
import os
import sys

from aiohttp import web

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from media.ice import IcePolicy  # noqa: E402
from media.sfu import RoomRegistry, SfuError  # noqa: E402

ids = itertools.count(1)


def make_app(registry: RoomRegistry) -> web.Application:
    pcs: dict[str, tuple[str, str]] = {}  # pc id -> (room, participant id)
    feeds: dict[str, dict[str, str]] = {}  # room -> feed -> participant id

    async def publish(request: web.Request) -> web.Response:
        body = await request.json()
        room_id, display = str(body["room"]), str(body["display"])
        pid = f"pub:{display}:{next(ids)}"
        try:
            p = await registry.room(room_id).join(pid, sender_id=display)
            sdp = await p.answer(body["sdp"])
        except SfuError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if not p.publishing:
            await registry.room(room_id).remove(pid)
            return web.json_response({"error": "offer does not publish"}, status=400)
        pc_id = f"pc{next(ids)}"
        pcs[pc_id] = (room_id, pid)
        feeds.setdefault(room_id, {})[display] = pid
        return web.json_response({"feed": display, "pc": pc_id, "sdp": sdp, "type": "answer"})

    async def subscribe(request: web.Request) -> web.Response:
        body = await request.json()
        room_id = str(body["room"])
        wanted = [str(f) for f in body["feeds"]]
        known = feeds.get(room_id, {})
        missing = [f for f in wanted if f not in known]
        if missing:
            return web.json_response({"error": f"no such feeds {missing}"}, status=404)
        excluded = [f for f in known if f not in wanted]
        if len(excluded) > 1:
            return web.json_response({"error": "a subscriber hears all publishers but itself"},
                                     status=400)
        sender_id = excluded[0] if excluded else f"listener:{next(ids)}"
        pid = f"sub:{sender_id}:{next(ids)}"
        try:
            p = await registry.room(room_id).join(pid, sender_id=sender_id)
            sdp = await p.answer(body["sdp"])
        except SfuError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        mids = {s.mid: s.sender_id for s in p.slots if s.sender_id is not None}
        if sorted(mids.values()) != sorted(wanted):
            await registry.room(room_id).remove(pid)
            return web.json_response({"error": f"slot map {mids} != feeds {wanted}"}, status=500)
        pc_id = f"pc{next(ids)}"
        pcs[pc_id] = (room_id, pid)
        return web.json_response({"pc": pc_id, "sdp": sdp, "type": "answer", "mids": mids})

    async def close(request: web.Request) -> web.Response:
        body = await request.json()
        n = 0
        for pc_id in body.get("pcs", []):
            entry = pcs.pop(str(pc_id), None)
            if entry is None:
                continue
            room_id, pid = entry
            room = registry.get(room_id)
            if room is not None and await room.remove(pid):
                n += 1
            for f, fp in list(feeds.get(room_id, {}).items()):
                if fp == pid:
                    del feeds[room_id][f]
            if room_id in feeds and not feeds[room_id]:
                del feeds[room_id]
        return web.json_response({"closed": n})

    async def health(request: web.Request) -> web.Response:
        return web.json_response(registry.stats())

    async def on_shutdown(app: web.Application) -> None:
        await registry.close()

    app = web.Application()
    app.router.add_post("/publish", publish)
    app.router.add_post("/subscribe", subscribe)
    app.router.add_post("/close", close)
    app.router.add_get("/health", health)
    app.on_shutdown.append(on_shutdown)
    return app


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--pidfile")
    ap.add_argument("--max-per-room", type=int, default=32,
                    help="participants per room (the bench uses 2 connections per peer)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING)
    if args.pidfile:
        with open(args.pidfile, "w") as f:
            f.write(str(os.getpid()))
    registry = RoomRegistry(ice=IcePolicy.loopback(), max_participants_per_room=args.max_per_room,
                            max_rooms=64)
    app = make_app(registry)
    # Move everything created by imports out of the collector's way: later gen-2
    # collections then scan only objects created after startup (shorter pauses).
    gc.collect()
    gc.freeze()
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
