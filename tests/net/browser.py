"""Headless Chromium inside a lab namespace, on the real session page, seen only through
stable hooks (``html[data-session-state]``, ``#display-name``, ``#join``, ``#audio-only``,
``#security-code``, ``ul#people li[data-participant]``) and the standard WebRTC API: an init
script keeps every RTCPeerConnection the page makes (and the configuration it was given),
so a test can read ``getStats()`` (samples decoded per incoming stream) and the ICE servers."""

from __future__ import annotations

import time
from pathlib import Path

from tests.browser.chromium import LAUNCH_ARGS

from .lab import Netns
from .services import chromium_wrapper

KEEP_PEER_CONNECTIONS = """
(() => {
  const Real = window.RTCPeerConnection;
  const kept = (window.__havenPeerConnections = []);
  function Kept(config, ...rest) {
    const pc = new Real(config, ...rest);
    kept.push({ pc, config: JSON.parse(JSON.stringify(config || {})) });
    return pc;
  }
  Kept.prototype = Real.prototype;
  Object.setPrototypeOf(Kept, Real);
  window.RTCPeerConnection = Kept;
})();
"""

INBOUND = """async () => {
  const out = [];
  for (const { pc } of window.__havenPeerConnections) {
    if (pc.connectionState === "closed") continue;
    (await pc.getStats()).forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio")
        out.push({ mid: r.mid, energy: r.totalAudioEnergy || 0, packets: r.packetsReceived || 0,
                   concealed: r.concealedSamples || 0, samples: r.totalSamplesReceived || 0 });
    });
  }
  return out;
}"""

SELECTED_PAIR = """async () => {
  const pcs = window.__havenPeerConnections.filter(({ pc }) => pc.connectionState !== "closed");
  if (!pcs.length) return null;
  const stats = await pcs[pcs.length - 1].pc.getStats();
  let pair = null;
  stats.forEach((r) => { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
  if (!pair) return null;
  const local = stats.get(pair.localCandidateId), remote = stats.get(pair.remoteCandidateId);
  return { local: local && local.candidateType, relayProtocol: local && local.relayProtocol,
           remote: remote && remote.candidateType };
}"""


def media_args(wav: Path, origin: str | None = None) -> list[str]:
    """The shipped browser's behaviour plus a fake microphone: no loopback allowance.

    ``origin``: a plain-HTTP origin other than localhost to treat as secure, standing in for
    the TLS proxy a real deployment has (microphones and WebCrypto need a secure context)."""
    args = [a for a in LAUNCH_ARGS if not a.startswith("--autoplay-policy")]
    args += ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
             f"--use-file-for-fake-audio-capture={wav}",
             "--autoplay-policy=no-user-gesture-required"]
    if origin:
        args.append(f"--unsafely-treat-insecure-origin-as-secure={origin}")
    return args


def launch_in(playwright, ns: Netns, folder: Path, wav: Path, origin: str | None = None):
    return playwright.chromium.launch(executable_path=str(chromium_wrapper(ns, folder)),
                                      headless=True, args=media_args(wav, origin))


class SessionTab:
    def __init__(self, browser, url: str):
        self.context = browser.new_context(viewport={"width": 1100, "height": 800})
        self.context.add_init_script(KEEP_PEER_CONNECTIONS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(url)

    def join(self, name: str) -> float:
        """Join audio-only; returns the monotonic time of the click."""
        self.page.wait_for_selector("html[data-session-state='lobby']", state="attached",
                                    timeout=60_000)
        self.page.fill("#display-name", name)
        self.page.check("#audio-only")
        clicked = time.monotonic()
        self.page.click("#join")
        self.page.wait_for_selector("html[data-session-state='in-room']", state="attached",
                                    timeout=60_000)
        return clicked

    def people(self) -> int:
        return self.page.locator("ul#people li[data-participant]").count()

    def code(self) -> str:
        return " ".join(self.page.text_content("#security-code").split())

    def inbound(self) -> list[dict]:
        return self.page.evaluate(INBOUND)

    def voices_heard(self, interval: float = 2.0) -> int:
        """Incoming voices the page is decoding now: streams that produced, over
        ``interval``, at least half that time's worth of samples that were not concealment
        (a frame that fails to decrypt never reaches the decoder, and is concealed)."""
        before = {s["mid"]: s for s in self.inbound()}
        time.sleep(interval)
        heard = 0
        for s in self.inbound():
            b = before.get(s["mid"])
            if b is not None:
                decoded = (s["samples"] - b["samples"]) - (s["concealed"] - b["concealed"])
                heard += decoded > 48000 * interval * 0.5
        return heard

    def ice_configs(self) -> list[dict]:
        return self.page.evaluate("window.__havenPeerConnections.map((p) => p.config)")

    def selected_pair(self) -> dict | None:
        return self.page.evaluate(SELECTED_PAIR)

    def close(self) -> None:
        self.context.close()
