"""WebXR in headless Chromium with an emulated Meta Quest 3 (iwer, Meta's Immersive Web
Emulation Runtime, from npm; injected by these tests only, never served to users).

On the preview page and in a real room: "Enter VR" appears only where an immersive session
is supported; the session starts seated at the person's seat and renders both eyes; a
controller's select on the in-VR mute button toggles mute; snap turning (never smooth) and a
level horizon; exiting returns to the normal view."""

from __future__ import annotations

import math

import numpy as np
import pytest

from environments import catalog
from tests.browser.chromium import ROOT, screenshot_pixels
from tests.browser.test_session_page import invite  # links from `haven invite`

pytestmark = pytest.mark.browser

IWER = ROOT / "node_modules" / "iwer" / "build" / "iwer.min.js"
VIEWPORT = {"width": 800, "height": 450}
HEAD = (0.0, 1.6, 0.0)  # iwer's default headset position (global space): the 'local' origin


def iwer_script() -> str:
    """Install the emulated headset before any page script runs (a stereo Quest 3)."""
    if not IWER.exists():
        pytest.skip("iwer is not installed (npm ci)")
    return IWER.read_text() + """
;(() => {
  const device = new IWER.XRDevice(IWER.metaQuest3, { stereoEnabled: true });
  device.installRuntime({ forceInstall: true });
  window.__xrDevice = device;
})();"""


def poll(page, expression: str, timeout_s: float = 60.0, step_ms: int = 200):
    """Evaluate a function expression until it returns something truthy (no eval: the
    pages' CSP forbids it, so no wait_for_function with strings)."""
    for _ in range(int(timeout_s * 1000 / step_ms)):
        value = page.evaluate(expression)
        if value:
            return value
        page.wait_for_timeout(step_ms)
    raise AssertionError(f"timed out waiting for {expression}")


STATE = "document.getElementById('scene').havenScene.xrState()"
XR_STATE = f"() => {STATE}"
PRESENTING = f"() => {STATE}.presenting"
NOT_PRESENTING = f"() => !{STATE}.presenting"


def frames(page) -> int:
    return page.evaluate("() => document.getElementById('scene').havenScene.renderer.info.render.frame")


def wait_xr_frames(page, n=2):
    """Wait for `n` more rendered XR frames."""
    start = page.evaluate("() => window.__xrFrames || 0")
    poll(page, f"() => (window.__xrFrames || 0) >= {start + n}", 90)


COUNT_XR_FRAMES = """() => {
  const s = document.getElementById('scene').havenScene;
  const session = s.renderer.xr.getSession();
  window.__xrFrames = 0;
  const tick = () => { window.__xrFrames++; if (!session.__ended) session.requestAnimationFrame(tick); };
  session.addEventListener('end', () => { session.__ended = true; });
  session.requestAnimationFrame(tick);
}"""


def aim_and_select(page, controller="right"):
    """Point a controller straight at the in-VR mute button and pull its trigger."""
    page.evaluate("""async ([hand, headY]) => {
      const { XR_MUTE_CONTROL } = await import('/static/js/scene/xr.js');
      const [x, y, z] = XR_MUTE_CONTROL.position;
      const c = window.__xrDevice.controllers[hand];
      // the 'local' space starts at the head: rig space + the head's global position
      c.position.set(x, y + headY, z + 0.35);
      c.quaternion.set(0, 0, 0, 1); // pointing along -z, through the button
    }""", [controller, HEAD[1]])
    wait_xr_frames(page, 2)
    page.evaluate("(hand) => window.__xrDevice.controllers[hand].updateButtonValue('trigger', 1)", controller)
    wait_xr_frames(page, 2)
    page.evaluate("(hand) => window.__xrDevice.controllers[hand].updateButtonValue('trigger', 0)", controller)
    wait_xr_frames(page, 2)


def eye_halves(chromium, page):
    """The emulator shows both eyes side by side, full window: left and right halves."""
    pixels = screenshot_pixels(chromium, page.screenshot())
    w = pixels.shape[1]
    return pixels[:, : w // 2].astype(np.int32), pixels[:, w - w // 2 :].astype(np.int32)


def assert_rendered(half):
    flat = half.reshape(-1, 3)
    assert flat.std(axis=0).max() > 10, "an eye's view is blank"
    assert len(np.unique(flat // 8, axis=0)) > 80


@pytest.fixture
def xr_page(chromium, live_server):
    contexts = []

    def opener(path, *, emulate=True):
        context = chromium.new_context(viewport=VIEWPORT)
        contexts.append(context)
        if emulate:
            context.add_init_script(iwer_script())
        page = context.new_page()
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(live_server.base_url + path)
        page.errors = errors
        return page

    yield opener
    for c in contexts:
        c.close()


def test_enter_vr_stays_hidden_without_an_immersive_runtime(xr_page):
    page = xr_page("/environments/beach?still=1&lowpower=1", emulate=False)
    page.wait_for_selector("html[data-scene-state=ready]", state="attached", timeout=60_000)
    page.wait_for_timeout(500)
    assert page.evaluate("() => navigator.xr ? 'xr' : 'none'") in ("xr", "none")
    assert page.is_hidden("#enter-vr")
    assert page.errors == []


def test_vr_on_the_preview_page(xr_page, chromium):
    env = catalog.get_environment("forest")
    page = xr_page("/environments/forest?still=1&lowpower=1&seats=5&avatars=4")
    page.wait_for_selector("html[data-scene-state=ready]", state="attached", timeout=60_000)
    page.wait_for_selector("#enter-vr", state="visible", timeout=30_000)
    page.evaluate("""() => { window.__toggles = 0;
      document.addEventListener('haven:xr-toggle-mute', () => window.__toggles++); }""")
    before = frames(page)
    page.click("#enter-vr")
    poll(page, PRESENTING)
    page.evaluate(COUNT_XR_FRAMES)
    wait_xr_frames(page, 3)
    assert frames(page) > before  # the XR loop renders even though the scene was stilled

    # seated at seat 0, at the seated eye height, facing the circle's centre, level
    state = page.evaluate(XR_STATE)
    seat = catalog.seat_positions(env, 5)[0]
    hx, hy, hz = state["head"]
    assert math.hypot(hx - seat.x, hz - seat.z) < 0.05, (state["head"], seat)
    assert abs(hy - env.seating.eye_height) < 0.15, state["head"]
    fx, _, fz = state["forward"]
    to_centre = (-seat.x, -seat.z)
    assert fx * to_centre[0] + fz * to_centre[1] > 0.9 * math.hypot(*to_centre)
    assert state["rigPitch"] == 0 and state["rigRoll"] == 0
    assert state["up"][1] > 0.999  # a fixed, level horizon

    # both eyes: two views in two halves of the framebuffer, each showing the place
    assert state["views"] == 2
    (l0, _, lw, lh), (r0, _, rw, rh) = state["viewports"]
    assert l0 == 0 and r0 == lw and lw == rw and lh == rh > 0
    left, right = eye_halves(chromium, page)
    assert_rendered(left)
    assert_rendered(right)
    assert np.abs(left - right).mean() > 0.5, "the two eyes show exactly the same picture"

    # a controller's select on the mute button: the page is told (once per select)
    aim_and_select(page)
    assert poll(page, "() => window.__toggles") == 1
    assert page.evaluate(XR_STATE)["selects"] == 1
    # pointing elsewhere and selecting does nothing
    page.evaluate("() => { const c = window.__xrDevice.controllers.right; c.position.set(0.3, 1.2, -0.2); c.quaternion.set(0, 0.7071, 0, 0.7071); }")
    wait_xr_frames(page, 2)
    page.evaluate("() => window.__xrDevice.controllers.right.updateButtonValue('trigger', 1)")
    wait_xr_frames(page, 2)
    page.evaluate("() => window.__xrDevice.controllers.right.updateButtonValue('trigger', 0)")
    wait_xr_frames(page, 2)
    assert page.evaluate("() => window.__toggles") == 1

    # snap turning: one 30-degree step per push of the stick, never a smooth spin
    yaw0 = page.evaluate(XR_STATE)["rigYaw"]
    page.evaluate("() => window.__xrDevice.controllers.left.updateAxes('thumbstick', 1, 0)")
    wait_xr_frames(page, 4)
    turned = page.evaluate(XR_STATE)
    assert turned["turns"] == 1
    assert math.isclose(yaw0 - turned["rigYaw"], math.radians(30), abs_tol=1e-6)
    wait_xr_frames(page, 4)  # still holding the stick: no further turning
    assert page.evaluate(XR_STATE)["turns"] == 1
    head_after = page.evaluate(XR_STATE)["head"]
    assert math.dist(head_after, state["head"]) < 0.05  # turning about the head, no motion
    page.evaluate("() => window.__xrDevice.controllers.left.updateAxes('thumbstick', 0, 0)")
    wait_xr_frames(page, 2)

    # exiting returns to the normal view, in the page, at the seat
    page.evaluate("() => document.getElementById('scene').havenScene.exitVR()")
    poll(page, NOT_PRESENTING)
    assert page.evaluate("() => document.querySelector('#scene canvas') !== null")
    page.wait_for_timeout(500)
    assert page.is_visible("#enter-vr")
    camera = page.evaluate("""() => { const s = document.getElementById('scene').havenScene;
        const p = s.camera.getWorldPosition(s.camera.position.clone());
        return [p.x, p.y, p.z, s.stats().width]; }""")
    assert math.hypot(camera[0] - seat.x, camera[2] - seat.z) < 0.05
    assert camera[3] > 0
    assert page.errors == []


# --- in a room ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mic_browser(chromium, tmp_path_factory):
    """Chromium with a fake microphone (a quiet tone), as a person joining a room has
    (launched through the module's Playwright: one sync instance per thread)."""
    from tests.browser.chromium import CHROMIUM, LAUNCH_ARGS
    from tests.voice_support import tone, write_wav

    wav = write_wav(tmp_path_factory.mktemp("vr-mic") / "tone.wav", tone(440.0, 10))
    browser = chromium.browser_type.launch(executable_path=CHROMIUM, headless=True, args=[
        *LAUNCH_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        # the live server offers loopback ICE candidates only (as the voice tests do)
        "--allow-loopback-in-peer-connection"])
    yield browser
    browser.close()


def join_room(browser, url: str, name: str, *, emulate: bool):
    context = browser.new_context(viewport=VIEWPORT)
    if emulate:
        context.add_init_script(iwer_script())
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("html[data-session-state='lobby']", state="attached", timeout=60_000)
    page.fill("#display-name", name)
    page.click("#join")
    page.wait_for_selector("html[data-session-state='in-room']", state="attached", timeout=60_000)
    page.errors = errors
    return context, page


def test_vr_in_a_room_mutes_with_a_controller(mic_browser, live_server):
    plain_url = invite(live_server, "no-vr-room", 1)[0]
    vr_url = invite(live_server, "vr-room", 1)[0]

    # no immersive runtime: no "Enter VR", in the lobby or the room
    context, page = join_room(mic_browser, plain_url, "Robin", emulate=False)
    poll(page, "() => !!document.getElementById('scene').havenScene", 60)
    page.wait_for_timeout(500)
    assert page.is_hidden("#enter-vr")
    context.close()

    context, page = join_room(mic_browser, vr_url, "Sam", emulate=True)
    try:
        poll(page, "() => !!document.getElementById('scene').havenScene", 60)
        page.wait_for_selector("#enter-vr", state="visible", timeout=30_000)
        assert page.get_attribute("#mute", "aria-pressed") == "false"
        page.click("#enter-vr")
        poll(page, PRESENTING, 60)
        page.evaluate(COUNT_XR_FRAMES)
        wait_xr_frames(page, 3)

        # seated where the room put this person
        scene = page.evaluate("""() => { const s = document.getElementById('scene').havenScene;
            return {seat: s.seats[s.viewerSeat], eye: s.definition.seating.eye_height}; }""")
        state = page.evaluate(XR_STATE)
        assert math.hypot(state["head"][0] - scene["seat"]["x"], state["head"][2] - scene["seat"]["z"]) < 0.05
        assert abs(state["head"][1] - scene["eye"]) < 0.15
        assert state["views"] == 2

        # the mute button in VR mutes, as the M key does, and shows it
        aim_and_select(page)
        poll(page, "() => document.getElementById('mute').getAttribute('aria-pressed') === 'true'", 30)
        assert page.evaluate(XR_STATE)["muted"] is True
        aim_and_select(page)
        poll(page, "() => document.getElementById('mute').getAttribute('aria-pressed') === 'false'", 30)
        assert page.evaluate(XR_STATE)["muted"] is False

        page.evaluate("() => document.getElementById('scene').havenScene.exitVR()")
        poll(page, NOT_PRESENTING, 60)
        assert page.evaluate("() => document.querySelector('#scene canvas') !== null")
        state = page.evaluate("document.documentElement.dataset.sessionState")
        assert state == "in-room", page.text_content("#ended-reason")
        assert page.errors == []
    finally:
        context.close()
