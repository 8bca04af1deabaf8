"""Shared browser tooling for the tests and bench/scene_bench.py: how to launch the system
Chromium with software WebGL (SwiftShader), and a tiny PNG decoder to check screenshots'
pixels without extra dependencies."""

from __future__ import annotations

import base64
from pathlib import Path

import numpy as np

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--no-sandbox",
    "--use-gl=angle",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--autoplay-policy=user-gesture-required",
]
ROOT = Path(__file__).resolve().parent.parent.parent
SCREENSHOT_DIR = ROOT / "docs" / "screenshots"

# Delete WebGL before any page script runs: the page must fall back to its 2D picture.
NO_WEBGL_SCRIPT = """
(() => {
  const original = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    if (/^(webgl|webgl2|experimental-webgl)$/.test(kind)) return null;
    return original.call(this, kind, ...rest);
  };
  delete window.WebGL2RenderingContext;
  delete window.WebGLRenderingContext;
})();
"""


def launch(playwright, **kw):
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=LAUNCH_ARGS, **kw)


def screenshot_pixels(browser, png: bytes, step: int = 2) -> np.ndarray:
    """Decode a screenshot (PNG bytes) in a scratch page of ``browser`` and return its RGB
    pixels (every ``step``-th row and column) as a uint8 array (h, w, 3)."""
    page = browser.new_page()
    try:
        result = page.evaluate(
            """async ([b64, step]) => {
                const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
                const bitmap = await createImageBitmap(new Blob([bytes], {type: "image/png"}));
                const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
                const ctx = canvas.getContext("2d");
                ctx.drawImage(bitmap, 0, 0);
                const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
                const w = Math.ceil(bitmap.width / step), h = Math.ceil(bitmap.height / step);
                const out = new Uint8Array(w * h * 3);
                let k = 0;
                for (let y = 0; y < bitmap.height; y += step) {
                  for (let x = 0; x < bitmap.width; x += step) {
                    const i = (y * bitmap.width + x) * 4;
                    out[k++] = data[i]; out[k++] = data[i + 1]; out[k++] = data[i + 2];
                  }
                }
                let bin = "";
                for (let i = 0; i < out.length; i += 0x8000) {
                  bin += String.fromCharCode.apply(null, out.subarray(i, i + 0x8000));
                }
                return {w, h, b64: btoa(bin)};
            }""",
            [base64.b64encode(png).decode(), step],
        )
    finally:
        page.close()
    raw = np.frombuffer(base64.b64decode(result["b64"]), dtype=np.uint8)
    return raw.reshape(result["h"], result["w"], 3)
