"""Benchmark the calm scenes in headless Chromium: frame time and draw calls per environment.

    .venv/bin/python bench/scene_bench.py [--frames 60] [--no-screenshots] [--json out.json]

Starts ``haven serve --demo`` on a free loopback port, opens each environment's preview page
in the system Chromium (software WebGL through SwiftShader unless you pass --gpu), and calls
the scene's own ``bench(frames)``: it renders frames back to back, reading one pixel after
each so the figure includes the GPU work, and reports the median and 95th percentile frame
time with ``renderer.info`` draw calls and triangles (every pass of a frame: the shadow map,
the sea's mirror and the view) and the texture memory the scene holds (textures and render
targets, estimated from their sizes and formats). Full quality and low-power mode are both
measured, with a full circle (16 seats, 15 glowing avatars, muted marks, raised hands and the
talking piece) as the worst case. It also saves docs/screenshots/<id>.png (full quality,
8 seats, 3 avatars) for the README.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from environments import catalog  # noqa: E402
from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS, SCREENSHOT_DIR  # noqa: E402
from tests.conftest import start_live_server  # noqa: E402

VIEWPORT = {"width": 1280, "height": 900}


def wait_ready(page):
    page.wait_for_selector("html[data-scene-state=ready]", state="attached", timeout=60_000)
    for _ in range(600):  # the first frame drawn
        if page.evaluate("() => window.havenScene.renderer.info.render.frame") >= 1:
            return
        page.wait_for_timeout(100)


def measure(browser, base_url, env_id, *, low_power, frames):
    page = browser.new_page(viewport=VIEWPORT)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    flags = "lowpower=1" if low_power else "lowpower=0"
    page.goto(f"{base_url}/environments/{env_id}?{flags}&autolowpower=off&seats=16&avatars=15")
    wait_ready(page)
    page.evaluate("""() => { const s = window.havenScene;
        for (let i = 1; i < 16; i++) {
          s.setSeatHighlight(i, 0.6);
          s.setAvatarState(i, {muted: i % 4 === 0, hand: i % 5 === 0});
        }
        s.setTalkingPiece(2); }""")
    page.evaluate("(n) => window.havenScene.bench(n)", 3)  # warm up (shader compiles)
    result = page.evaluate("(n) => window.havenScene.bench(n)", frames)
    result["errors"] = errors
    page.close()
    return result


def screenshot(browser, base_url, env_id):
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{base_url}/environments/{env_id}?autolowpower=off&seats=8&avatars=3&still=1")
    wait_ready(page)
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{env_id}.png"
    page.screenshot(path=str(path), clip=page.locator("#scene").bounding_box(), timeout=120_000)
    page.close()
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--no-screenshots", action="store_true")
    parser.add_argument("--gpu", action="store_true", help="let Chromium use the real GPU")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    launch_args = [a for a in LAUNCH_ARGS if not args.gpu or "swiftshader" not in a and a != "--use-gl=angle"]
    server = start_live_server(Path(tempfile.mkdtemp(prefix="haven-bench-")))
    rows = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=launch_args)
            renderer = browser.new_page()
            gl = renderer.evaluate("""() => { const gl = document.createElement('canvas').getContext('webgl2');
                const d = gl && gl.getExtension('WEBGL_debug_renderer_info');
                return gl ? gl.getParameter(d ? d.UNMASKED_RENDERER_WEBGL : gl.RENDERER) : 'none'; }""")
            renderer.close()
            for env in catalog.all_environments():
                for low in (False, True):
                    r = measure(browser, server.base_url, env.id, low_power=low, frames=args.frames)
                    r.update(environment=env.id, mode="low-power" if low else "full")
                    rows.append(r)
                if not args.no_screenshots:
                    print(f"screenshot: {screenshot(browser, server.base_url, env.id).relative_to(ROOT)}")
            browser.close()
    finally:
        server.process.terminate()
        server.process.wait(timeout=10)

    print(f"\nScene benchmark, {date.today().isoformat()}, Chromium headless, WebGL renderer: {gl}")
    print(f"CPU: {platform.processor() or platform.machine()}, frames per run: {args.frames}, "
          f"viewport {VIEWPORT['width']}x{VIEWPORT['height']}\n")
    print("| environment | mode | canvas | draw calls | triangles | texture memory | median ms | p95 ms |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        mem = f"{r['textureMemoryBytes'] / 2**20:.1f} MiB ({r['textureBytes'] / 2**20:.1f} + " \
              f"{r['renderTargetBytes'] / 2**20:.1f} targets)"
        print(f"| {r['environment']} | {r['mode']} | {r['width']}x{r['height']} | {r['drawCalls']} "
              f"| {r['triangles']} | {mem} | {r['medianMs']:.1f} | {r['p95Ms']:.1f} |")
    failures = [r for r in rows if r["errors"] or r["drawCalls"] >= 100]
    for r in failures:
        print(f"problem in {r['environment']} ({r['mode']}): {r['errors'] or 'too many draw calls'}")
    if args.json:
        args.json.write_text(json.dumps({"renderer": gl, "rows": rows}, indent=2))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
