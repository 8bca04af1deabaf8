"""The environment preview pages in real headless Chromium (system Chromium, SwiftShader GL):
the scene renders, colours differ by place, comfort modes and the 2D fallback work, the
controls are keyboard-reachable and labelled, and nothing logs an error."""

from __future__ import annotations

import math

import numpy as np
import pytest

from environments import catalog
from tests.browser.chromium import ROOT, SCREENSHOT_DIR, screenshot_pixels
from tests.browser.conftest import write_screenshots

pytestmark = pytest.mark.browser

ENV_IDS = [e.id for e in catalog.all_environments()]


def frames_rendered(page) -> int:
    return page.evaluate("() => window.havenScene.renderer.info.render.frame")


def wait_frames(page, n=3):
    start = frames_rendered(page)
    page.wait_for_timeout(100)
    for _ in range(200):
        if frames_rendered(page) >= start + n:
            return
        page.wait_for_timeout(100)
    raise AssertionError("the scene did not render")


def wait_settled(page) -> int:
    """Wait until the scene stops rendering (a still scene draws one last frame, then stops)."""
    last, stable = frames_rendered(page), 0
    for _ in range(40):
        page.wait_for_timeout(600)
        now = frames_rendered(page)
        stable = stable + 1 if now == last else 0
        if stable == 2:
            return now
        last = now
    raise AssertionError("the scene kept rendering")


def scene_pixels(chromium, page, path=None):
    # a clip of the page, not an element screenshot: that one waits for two quick animation
    # frames in a row, which a software-rendered WebGL page on a busy machine may not give
    box = page.locator("#scene").bounding_box()
    png = page.screenshot(path=path, clip=box, timeout=120_000)
    return screenshot_pixels(chromium, png)


def assert_not_blank(pixels):
    flat = pixels.reshape(-1, 3).astype(np.int32)
    assert flat.std(axis=0).max() > 12, "the picture is flat (blank)"
    colours = np.unique(flat // 8, axis=0)
    assert len(colours) > 150, f"only {len(colours)} colours: blank or broken"


@pytest.fixture(scope="module")
def rendered(chromium, live_server):
    """Each environment's preview, rendered once in full quality: mean colours + pixels."""
    results = {}
    context = chromium.new_context(viewport={"width": 1100, "height": 900})
    try:
        for env_id in ENV_IDS:
            page = context.new_page()
            errors = []
            page.on("console", lambda m, e=errors: e.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda x, e=errors: e.append(str(x)))
            page.goto(f"{live_server.base_url}/environments/{env_id}?autolowpower=off&seats=8&avatars=3&still=1")
            page.wait_for_selector("html[data-scene-state=ready]", state="attached", timeout=120_000)
            wait_settled(page)  # stilled: one finished frame (and cheap to screenshot)
            path = SCREENSHOT_DIR / f"{env_id}.png" if write_screenshots() else None
            if path:
                path.parent.mkdir(parents=True, exist_ok=True)
            pixels = scene_pixels(chromium, page, path)
            stats = page.evaluate("() => window.havenScene.stats()")
            graph = page.evaluate("""() => { const kinds = {};
                window.havenScene.camera.parent.parent.traverse((o) => {
                  const k = o.isWater ? "water-addon" : o.isSky ? "sky-addon" : o.isPointLight ? "lamp-light"
                    : o.name; kinds[k] = (kinds[k] || 0) + 1; });
                return kinds; }""")
            results[env_id] = {"pixels": pixels, "errors": errors, "stats": stats, "graph": graph}
            page.close()
    finally:
        context.close()
    return results


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_preview_renders_a_non_blank_scene_without_errors(rendered, env_id):
    result = rendered[env_id]
    assert result["errors"] == []
    assert_not_blank(result["pixels"])
    assert 0 < result["stats"]["drawCalls"] < 100


def test_colours_differ_by_environment(rendered):
    means = {k: v["pixels"].reshape(-1, 3).mean(axis=0) for k, v in rendered.items()}
    beach, forest = means["beach"], means["forest"]
    assert np.linalg.norm(beach - forest) > 30, (beach, forest)
    # the forest is green; the beach is warm sand and sky with a blue sea band
    assert forest[1] > forest[0] and forest[1] > forest[2]
    assert beach[0] > forest[0] and beach[2] > forest[2]
    sea_band = rendered["beach"]["pixels"][:, :, :].astype(np.int32)
    bluish = (sea_band[:, :, 2] > sea_band[:, :, 0] + 20).mean()
    assert bluish > 0.03, "no sea visible on the beach"


def band(pixels, top, bottom):
    h = pixels.shape[0]
    return pixels[int(h * top):int(h * bottom)].reshape(-1, 3).astype(np.int32)


def test_beach_has_a_sky_gradient_and_light_on_the_water(rendered):
    """three's Sky addon (a deep blue zenith paling to the horizon) and its Water addon (the
    sea mirrors the bright sky and glints: highlights well above the water's own colour)."""
    beach = rendered["beach"]
    assert beach["graph"].get("sky-addon") == 1 and beach["graph"].get("water-addon") == 1
    px = beach["pixels"]
    zenith, low_sky = band(px, 0, 0.06).mean(axis=0), band(px, 0.3, 0.36).mean(axis=0)
    assert zenith[2] > zenith[0] + 40, zenith  # blue overhead
    assert low_sky.mean() > zenith.mean() + 15, (zenith, low_sky)  # paler towards the horizon
    assert low_sky[2] - low_sky[0] < zenith[2] - zenith[0]  # and less saturated
    sea = band(px, 0.43, 0.5)
    lum = sea.mean(axis=1)
    bluish = (sea[:, 2] > sea[:, 0] + 8).mean()
    assert bluish > 0.1, bluish  # the sea (it also mirrors the golden sky)
    assert np.percentile(lum, 99) > np.percentile(lum, 40) + 30, (
        "no highlights on the water", np.percentile(lum, [40, 99]))


def test_forest_has_light_shafts_fog_and_ground_cover(rendered):
    forest = rendered["forest"]["graph"]
    assert forest.get("light-shafts") == 1
    assert forest.get("ground-cover:grass", 0) >= 1 and forest.get("ground-cover:fern", 0) >= 1
    assert forest.get("props:pine", 0) >= 4 and forest.get("props:birch", 0) >= 2  # variants


def test_the_quiet_room_is_a_room_with_a_window_and_lamps(rendered):
    room = rendered["quiet-room"]
    graph = room["graph"]
    assert graph.get("room:walls") == 1 and graph.get("room:glass") == 1
    assert graph.get("lamp-light") == 2 and graph.get("props:plant", 0) >= 2
    px = room["pixels"].astype(np.int32)
    h, w = px.shape[:2]
    # the window straight ahead shows the sky and the garden; the room around it is warm
    window = px[int(h * 0.3):int(h * 0.38), int(w * 0.4):int(w * 0.6)].reshape(-1, 3)
    walls = np.concatenate([px[int(h * 0.2):int(h * 0.4), :int(w * 0.08)].reshape(-1, 3),
                            px[int(h * 0.2):int(h * 0.4), -int(w * 0.08):].reshape(-1, 3)])
    assert window.mean(axis=0)[2] > walls.mean(axis=0)[2] - 5, "no daylight through the window"
    assert walls.mean(axis=0)[0] > walls.mean(axis=0)[2], "the room is not warmly lit"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_draw_calls_stay_under_budget_with_a_full_circle(open_page, env_id):
    """16 people (the most a group holds), all speaking, muted or with a hand up, and the
    talking piece: still under 100 draw calls, shadow and mirror passes included."""
    opened = open_page(f"/environments/{env_id}?autolowpower=off&seats=16&avatars=15&still=1")
    page = opened.page
    page.evaluate("""() => { const s = window.havenScene;
        for (let i = 1; i < 16; i++) {
          s.setSeatHighlight(i, 0.5 + i / 40);
          s.setAvatarState(i, {muted: i % 2 === 0, hand: i % 3 === 0});
        }
        s.setTalkingPiece(3);
        s.render(); }""")
    stats = page.evaluate("() => window.havenScene.stats()")
    assert stats["drawCalls"] < 100, stats
    assert page.evaluate("() => window.havenScene.avatarState(3)")["hand"] is True
    assert opened.errors == []


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_low_power_draws_less_and_uses_less_texture_memory(open_page, env_id):
    opened = open_page(f"/environments/{env_id}?autolowpower=off&seats=8&avatars=7&still=1")
    page = opened.page
    full = page.evaluate("() => { const s = window.havenScene; s.render(); return s.stats(); }")
    low = page.evaluate("() => { const s = window.havenScene; s.setLowPower(true); s.render(); return s.stats(); }")
    assert low["triangles"] < full["triangles"] * 0.85, (full, low)
    assert low["textureMemoryBytes"] < full["textureMemoryBytes"] * 0.6, (full, low)
    assert low["drawCalls"] <= full["drawCalls"]
    assert opened.errors == []


def test_js_seats_match_python_and_props_are_deterministic(open_page):
    opened = open_page("/environments/forest?still=1")
    js = opened.page.evaluate("""async () => {
        const m = await import("/static/js/scene/scene.js");
        const def = window.havenScene.definition;
        const seats = [];
        for (let n = 1; n <= 16; n++) seats.push(m.seatPositions(def, n));
        const a = JSON.stringify(m.placeProps(def)), b = JSON.stringify(m.placeProps(def));
        return {seats, same: a === b, counts: m.placeProps(def).map((g) => g.length)};
    }""")
    env = catalog.get_environment("forest")
    for n in range(1, 17):
        py = catalog.seat_positions(env, n)
        for a, b in zip(py, js["seats"][n - 1], strict=True):
            assert math.isclose(a.x, b["x"], abs_tol=1e-9) and math.isclose(a.z, b["z"], abs_tol=1e-9)
            assert math.isclose(a.yaw, b["yaw"], abs_tol=1e-12) and a.y == b["y"]
    assert js["same"]
    assert all(c > 0 for c in js["counts"])
    assert opened.errors == []


def test_scene_api_for_the_session_page(open_page):
    opened = open_page("/environments/beach?still=1&seats=4")
    result = opened.page.evaluate("""() => {
        const s = window.havenScene;
        const before = s.seats.length;
        s.placeAvatar(2, {color: "#a8d5c9", label: "Sam"});
        s.setSeatHighlight(2, 1);
        s.setSeatHighlight(3, 0.5);  // no avatar there: the cushion glows
        const seats = s.setSeatCount(7);
        s.setLowPower(true);
        s.setReducedMotion(true);
        s.render();
        return {before, after: seats.length, lowPower: s.lowPower, still: s.reducedMotion,
                seat0: seats[0]};
    }""")
    assert result["before"] == 4 and result["after"] == 7
    assert result["lowPower"] and result["still"]
    assert result["seat0"]["z"] > 0 and abs(result["seat0"]["x"]) < 1e-9
    opened.page.evaluate("""async () => {
        const other = await (await fetch("/api/environments/forest")).json();
        window.havenScene.setEnvironment(other.environment);
        window.havenScene.render();
        window.havenScene.dispose();
    }""")
    assert opened.page.locator("#scene canvas").count() == 0
    assert opened.errors == []


def test_reduced_motion_preference_stills_the_scene(open_page, chromium):
    opened = open_page("/environments/beach?autolowpower=off", reduced_motion="reduce")
    page = opened.page
    assert page.get_attribute("#toggle-motion", "aria-pressed") == "true"
    assert page.evaluate("() => window.havenScene.reducedMotion") is True
    first = wait_settled(page)
    still_a = scene_pixels(chromium, page)
    page.wait_for_timeout(1500)
    assert frames_rendered(page) == first, "a still scene must not keep rendering"
    still_b = scene_pixels(chromium, page)
    assert_not_blank(still_a)
    assert np.array_equal(still_a, still_b)
    assert opened.errors == []


def test_motion_toggle_by_keyboard(open_page):
    opened = open_page("/environments/forest?autolowpower=off")
    page = opened.page
    assert page.evaluate("() => window.havenScene.reducedMotion") is False
    wait_frames(page, 2)
    page.focus("#toggle-motion")
    page.keyboard.press("Space")
    assert page.get_attribute("#toggle-motion", "aria-pressed") == "true"
    assert page.evaluate("() => window.havenScene.reducedMotion") is True
    first = wait_settled(page)
    page.wait_for_timeout(1000)
    # the loop has stopped: a running loop draws ~60 frames a second; at most one on-demand
    # frame (a texture that finished loading late on a busy machine asks for one) may come
    assert frames_rendered(page) - first <= 1
    assert "still" in page.inner_text("#scene-status")
    page.keyboard.press("Enter")
    assert page.get_attribute("#toggle-motion", "aria-pressed") == "false"
    wait_frames(page, 2)
    assert opened.errors == []


def test_slow_frames_switch_to_low_power_with_a_notice(open_page):
    opened = open_page("/environments/forest?frame-budget=1")
    page = opened.page
    # (polling by hand: page.wait_for_function's string predicates need eval, which the
    # page's CSP rightly forbids)
    for _ in range(100):
        if page.evaluate("() => window.havenScene.lowPower"):
            break
        page.wait_for_timeout(100)
    assert page.evaluate("() => window.havenScene.lowPower") is True
    assert page.get_attribute("#toggle-low-power", "aria-pressed") == "true"
    assert "low-power mode is now on" in page.inner_text("#scene-status")
    stats = page.evaluate("() => window.havenScene.stats()")
    assert stats["autoFrameMs"] > 1
    page.click("#toggle-low-power")
    assert page.evaluate("() => window.havenScene.lowPower") is False
    assert page.get_attribute("#toggle-low-power", "aria-pressed") == "false"
    assert opened.errors == []


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_no_webgl_falls_back_to_a_still_picture(open_page, chromium, env_id):
    opened = open_page(f"/environments/{env_id}", webgl=False)
    page = opened.page
    assert page.get_attribute("html", "data-scene-state") == "fallback"
    assert page.locator("#scene canvas.scene-fallback-canvas").count() == 1
    assert "still picture" in page.inner_text("#scene-status")
    assert page.is_disabled("#toggle-motion")
    assert page.is_enabled("#toggle-sound")
    assert_not_blank(scene_pixels(chromium, page))
    assert opened.errors == []


def test_fallback_colours_differ_by_environment(open_page, chromium):
    means = {}
    for env_id in ("beach", "forest"):
        page = open_page(f"/environments/{env_id}", webgl=False).page
        means[env_id] = scene_pixels(chromium, page).reshape(-1, 3).mean(axis=0)
    assert np.linalg.norm(means["beach"] - means["forest"]) > 20


def test_controls_are_keyboard_reachable_labelled_and_show_focus(open_page):
    opened = open_page("/environments/beach?still=1")
    page = opened.page
    seen = {}
    page.focus("#toggle-motion")
    for _ in range(8):
        info = page.evaluate("""() => {
            const el = document.activeElement;
            const label = el.labels && el.labels.length ? el.labels[0].textContent.trim()
                : (el.getAttribute("aria-label") || el.textContent.trim());
            const style = getComputedStyle(el);
            return {id: el.id, label, outline: style.outlineStyle, width: style.outlineWidth,
                    visible: el.matches(":focus-visible")};
        }""")
        if info["id"]:
            seen[info["id"]] = info
        page.keyboard.press("Tab")
    for control in ("toggle-motion", "toggle-low-power", "toggle-sound", "sound-volume"):
        assert control in seen, f"{control} is not reachable by Tab"
        assert seen[control]["label"], f"{control} has no accessible name"
        assert seen[control]["outline"] != "none" and seen[control]["width"] != "0px"
    assert page.get_attribute("#scene", "role") == "img"
    assert page.get_attribute("#scene", "aria-describedby") == "scene-description"
    assert len(page.inner_text("#scene-description")) > 80
    # Enter VR only shows where immersive-vr is supported (not in headless Chromium)
    assert page.is_hidden("#enter-vr")
    assert opened.errors == []


def test_soundscape_plays_after_a_click_and_has_its_own_volume(open_page):
    opened = open_page("/environments/forest?still=1")
    page = opened.page
    assert page.evaluate("() => window.havenSoundscape.state") == "paused"  # no autoplay
    page.click("#toggle-sound")
    for _ in range(300):
        state = page.evaluate("() => window.havenSoundscape.state")
        if state.startswith("playing"):
            break
        page.wait_for_timeout(100)
    assert state == "playing-webaudio", state
    assert page.evaluate("() => window.havenSoundscape.buffer.duration") == pytest.approx(40, abs=0.05)
    page.fill("#sound-volume", "20")
    page.dispatch_event("#sound-volume", "input")
    assert page.evaluate("() => window.havenSoundscape.volume") == pytest.approx(0.2)
    assert page.get_attribute("#sound-volume", "aria-valuetext") == "20 percent"
    page.click("#toggle-sound")
    assert page.evaluate("() => window.havenSoundscape.state") == "paused"
    assert page.get_attribute("#toggle-sound", "aria-pressed") == "false"
    assert opened.errors == []


def test_axe_finds_no_serious_accessibility_problems(open_page):
    axe = (ROOT / "node_modules" / "axe-core" / "axe.min.js").read_text()
    # axe is injected as an inline script, so this one context bypasses the page's CSP
    opened = open_page("/environments/beach?still=1", bypass_csp=True)
    page = opened.page
    page.add_script_tag(content=axe)
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["help"], [n["target"] for n in v["nodes"]][:3])
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []


def test_unknown_environment_page_is_a_readable_404(open_page):
    opened = open_page("/environments/moon", wait=False)
    assert "no such environment" in opened.page.inner_text("main")
