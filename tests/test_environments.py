"""Environment definitions: validation, seat positions (hypothesis) and the HTTP API/pages."""

from __future__ import annotations

import copy
import itertools
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from environments import catalog
from environments.catalog import DefinitionError, load_definition, seat_positions

SHIPPED = catalog.all_environments()
SHIPPED_IDS = [e.id for e in SHIPPED]


def raw(env_id: str) -> dict:
    return json.loads((catalog.DEFINITIONS_DIR / f"{env_id}.json").read_text())


def test_beach_forest_and_the_quiet_room_ship():
    assert SHIPPED_IDS[:3] == ["beach", "forest", "quiet-room"]  # by each file's "order"
    beach, forest = catalog.get_environment("beach"), catalog.get_environment("forest")
    assert beach.water is not None and beach.water.wave_height > 0
    assert {g.kind for g in beach.props} >= {"palm", "rock"}
    assert forest.water is None and forest.fog.far < 100  # soft fog closes the forest in
    assert {g.kind for g in forest.props} & {"pine", "broadleaf"}
    assert {layer.kind for layer in beach.soundscape.layers} >= {"surf", "wind"}
    assert {layer.kind for layer in forest.soundscape.layers} >= {"leaves", "birds"}
    assert beach.sky.physical is not None and beach.water.reflections  # Sky and Water addons
    assert {g.kind for g in forest.props} >= {"pine", "broadleaf", "birch"}
    assert all(g.variants >= 2 for g in forest.props if g.kind in ("pine", "broadleaf"))
    assert {g.kind for g in forest.ground_cover} >= {"grass", "fern"}
    assert forest.atmosphere.light_shafts > 0
    room = catalog.get_environment("quiet-room")
    assert room.interior is not None and room.interior.windows and room.lamps
    assert {g.kind for g in room.props} >= {"plant"}
    assert {layer.kind for layer in room.soundscape.layers} >= {"rain"}
    for env in SHIPPED:
        assert env.seating.max_people == 16  # group meetings hold 16
    assert catalog.get_environment("nowhere") is None


@pytest.mark.parametrize("env_id", SHIPPED_IDS)
def test_every_shipped_definition_validates(env_id):
    env = catalog.load_file(catalog.DEFINITIONS_DIR / f"{env_id}.json")
    assert env.id == env_id
    summary = env.summary()
    assert {"id", "name", "description"} <= set(summary)
    full = env.to_dict()
    assert full["soundscape_url"] == f"/soundscapes/{env_id}.ogg"
    # the served definition validates again (the JSON round trip loses nothing)
    load_definition({k: v for k, v in full.items() if k not in ("soundscape_url", "preview_url")})
    assert len(env.scene_description) > len(env.description)
    assert sum(g.count for g in env.props) <= 400


SOURCE_DIRS = ("environments", "web", "media", "therapy", "groups", "bench")


def test_the_quiet_room_is_data_alone():
    """No code names the indoor place: it is one JSON file, rendered by the generic builders
    (an interior, lamps, props placed `at` fixed spots)."""
    root = catalog.DEFINITIONS_DIR.parent.parent
    mentions = []
    for folder in SOURCE_DIRS:
        for path in (root / folder).rglob("*"):
            if path.suffix in (".py", ".js", ".html", ".css") and "quiet-room" in path.read_text(
                    errors="ignore").replace("quiet_room", "quiet-room"):
                mentions.append(str(path.relative_to(root)))
    assert mentions == []
    # and the same data under another name is just as good a place
    data = raw("quiet-room")
    data.update(id="reading-room", name="Reading room")
    copy_env = load_definition(data)
    assert copy_env.interior == catalog.get_environment("quiet-room").interior
    assert len(seat_positions(copy_env, 16)) == 16


def test_a_third_environment_is_only_data():
    lake = copy.deepcopy(raw("forest"))
    lake.update(id="lake", name="Lake", description="A still lake at dusk.")
    lake["water"] = copy.deepcopy(raw("beach")["water"])
    lake["sky"]["zenith"] = "#3b4a7a"
    env = load_definition(lake)
    assert env.id == "lake" and env.water is not None
    assert len(seat_positions(env, 12)) == 12


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("name"), "name"),
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.update(id="Not OK"), "id"),
    (lambda d: d["sky"].update(zenith="blue"), "sky.zenith"),
    (lambda d: d["fog"].update(near=50, far=10), "fog.far"),
    (lambda d: d["props"][0].update(kind="castle"), "props[0].kind"),
    (lambda d: d["props"][0].update(count=-1), "props[0].count"),
    (lambda d: d["props"][0].update(min_radius=0.5), "props[0].min_radius"),
    (lambda d: d["seating"].update(max_people=17), "seating.max_people"),
    (lambda d: d["sky"].update(physical={"turbidity": 50, "rayleigh": 1, "mie_coefficient": 0,
                                         "mie_directional_g": 0.5}), "sky.physical.turbidity"),
    (lambda d: d["sky"]["physical"].update(glow=1), "sky.physical.glow"),
    (lambda d: d["props"][0].update(variants=5), "props[0].variants"),
    (lambda d: d["props"].__setitem__(0, {"kind": "rock", "colors": ["#888888"], "at": [[0, 0.5]]}),
     "props[0].at[0]"),
    (lambda d: d["props"].__setitem__(0, {"kind": "rock", "colors": ["#888888"], "at": [[0, 999]]}),
     "props[0].at[0]"),
    (lambda d: d["props"].__setitem__(0, {"kind": "rock", "colors": ["#888888"], "at": [[9, 9]],
                                          "count": 3}), "props[0].count"),
    (lambda d: d.update(ground_cover=[{"kind": "moss", "density": 1, "min_radius": 5,
                                       "max_radius": 9, "colors": ["#445533"]}]), "ground_cover[0].kind"),
    (lambda d: d.update(ground_cover=[{"kind": "grass", "density": 40, "min_radius": 5,
                                       "max_radius": 100, "colors": ["#445533"]}]), "ground_cover"),
    (lambda d: d.update(ground_cover=[{"kind": "grass", "density": 1, "min_radius": 1,
                                       "max_radius": 9, "colors": ["#445533"]}]), "ground_cover[0].min_radius"),
    (lambda d: d.update(lamps=[{"kind": "floor", "x": 0.5, "z": 0.5, "color": "#ffcc88",
                                "intensity": 3}]), "lamps[0]"),
    (lambda d: d.update(lamps=[{"kind": "torch", "x": 9, "z": 9, "color": "#ffcc88",
                                "intensity": 3}]), "lamps[0].kind"),
    (lambda d: d.update(order=-1), "order"),
    (lambda d: d["seating"].update(center=[0, 148]), "seating"),
    (lambda d: d["seating"].update(radius=9.5), "props[0].min_radius"),
    (lambda d: d["water"].update(shore_z=-1), "seating"),
    (lambda d: d.update(motion_intensity=2), "motion_intensity"),
    (lambda d: d["soundscape"]["layers"][0].update(kind="thunder"), "soundscape"),
    (lambda d: d["soundscape"].update(duration_s=1000), "soundscape"),
    (lambda d: d.update(format=2), "format"),
])
def test_bad_definitions_are_refused_with_the_field(mutate, field):
    assert_refused("beach", mutate, field)


def assert_refused(env_id, mutate, field):
    data = raw(env_id)
    mutate(data)
    with pytest.raises(DefinitionError) as info:
        load_definition(data)
    assert info.value.field == field


ROOM_MUTATIONS = [
    (lambda d: d["interior"].update(width=6), "interior"),
    (lambda d: d["interior"]["windows"][0].update(width=20), "interior.windows[0]"),
    (lambda d: d["interior"]["windows"][0].update(height=2.8), "interior.windows[0].height"),
    (lambda d: d["interior"]["windows"][0].update(wall="up"), "interior.windows[0].wall"),
    (lambda d: d["interior"].update(floor_kind="lava"), "interior.floor_kind"),
    (lambda d: d["interior"].update(sofa=True), "interior.sofa"),
    (lambda d: d["lamps"][0].update(x=30), "lamps[0]"),
    (lambda d: d["lamps"][0].update(height=5), "lamps[0].height"),
    (lambda d: d["props"][0]["at"].__setitem__(0, [0.5, 0.5]), "props[0].at[0]"),
]


@pytest.mark.parametrize("mutate, field", ROOM_MUTATIONS)
def test_bad_rooms_are_refused_with_the_field(mutate, field):
    assert_refused("quiet-room", mutate, field)


@settings(max_examples=80, deadline=None)
@given(env=st.sampled_from(SHIPPED), n=st.integers(min_value=1, max_value=16))
def test_seats_are_distinct_and_inside_the_scene(env, n):
    seats = seat_positions(env, n)
    assert [s.index for s in seats] == list(range(n))
    cx, cz = env.seating.center
    for s in seats:
        assert math.hypot(s.x, s.z) < env.bounds_radius
        assert s.y == env.seating.eye_height
        if env.water is not None:
            assert s.z > env.water.shore_z + 1  # on dry land
        # each seat faces the centre: forward for yaw is (-sin, -cos)
        fx, fz = -math.sin(s.yaw), -math.cos(s.yaw)
        dx, dz = cx - s.x, cz - s.z
        assert fx * dx + fz * dz == pytest.approx(math.hypot(dx, dz), rel=1e-9)
    for a, b in itertools.combinations(seats, 2):
        gap = math.hypot(a.x - b.x, a.z - b.z)
        assert gap >= env.seating.min_spacing - 1e-9
        assert gap >= catalog.MIN_SEAT_GAP
    # props and plants stay clear of the circle
    r = catalog.circle_radius(env.seating, n)
    assert all(g.min_radius >= r + 1.5 for g in env.props if g.count and not g.at)
    assert all(math.hypot(x - cx, z - cz) >= r + 1 for g in env.props for x, z, _ in g.at)
    assert all(g.min_radius >= r + 0.6 for g in env.ground_cover)


@settings(max_examples=80, deadline=None)
@given(radius=st.floats(0.8, 6), spacing=st.floats(0.6, 3), start=st.floats(-360, 360),
       n=st.integers(1, 16))
def test_seat_formula_for_any_seating(radius, spacing, start, n):
    data = raw("forest")
    data["seating"].update(radius=radius, min_spacing=spacing, start_angle_deg=start)
    for group in data["props"]:
        group["min_radius"] = max(group["min_radius"], 12.0)
        group["max_radius"] = max(group["max_radius"], group["min_radius"])
    for group in data["ground_cover"]:
        group["min_radius"] = max(group["min_radius"], 12.0)
        group["max_radius"] = max(group["max_radius"], group["min_radius"])
    env = load_definition(data)
    seats = seat_positions(env, n)
    points = {(round(s.x, 6), round(s.z, 6)) for s in seats}
    assert len(points) == n
    for a, b in itertools.combinations(seats, 2):
        assert math.hypot(a.x - b.x, a.z - b.z) >= spacing - 1e-9


@pytest.mark.parametrize("n", [0, 17, -1, True])
def test_seat_positions_refuses_bad_group_sizes(n):
    with pytest.raises(ValueError):
        seat_positions(SHIPPED[0], n)


def test_js_seat_formula_matches_python():
    """seats.js is a transcription of seat_positions: keep the two in step."""
    js = (catalog.DEFINITIONS_DIR.parent.parent / "web/static/js/scene/seats.js").read_text()
    assert "spacing / (2 * Math.sin(Math.PI / n))" in js
    assert "cx + r * Math.sin(theta)" in js and "cz + r * Math.cos(theta)" in js
    assert "start + (2 * Math.PI * i) / n" in js


# --- HTTP ----------------------------------------------------------------------------------


async def test_api_lists_environments(client):
    resp = await client.get("/api/environments")
    assert resp.status == 200
    body = await resp.json()
    ids = [e["id"] for e in body["environments"]]
    assert ids[:3] == ["beach", "forest", "quiet-room"]
    for e in body["environments"]:
        assert e["name"] and e["description"] and e["preview_url"] == f"/environments/{e['id']}"


async def test_api_serves_a_full_definition(client):
    resp = await client.get("/api/environments/forest")
    assert resp.status == 200
    env = (await resp.json())["environment"]
    assert env["id"] == "forest" and env["fog"]["far"] > env["fog"]["near"]
    assert env["seating"]["max_people"] == 16 and env["props"]
    assert env["soundscape"]["layers"]


async def test_api_unknown_environment_is_a_json_404(client):
    resp = await client.get("/api/environments/moon")
    assert resp.status == 404
    assert resp.content_type == "application/json"
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_openapi_describes_the_environment_routes(client):
    doc = await (await client.get("/api/openapi.json")).json()
    assert "/api/environments" in doc["paths"]
    op = doc["paths"]["/api/environments/{env_id}"]["get"]
    assert op["security"] == [] and "404" in op["responses"]


async def test_preview_page(client):
    resp = await client.get("/environments/beach")
    assert resp.status == 200
    html = await resp.text()
    csp = resp.headers["Content-Security-Policy"]
    nonce = csp.split("'nonce-")[1].split("'")[0]
    assert f'<script type="importmap" nonce="{nonce}">' in html
    assert '"three": "/vendor/three/build/three.module.js"' in html
    assert 'src="/static/js/environment-page.js"' in html
    assert "/static/css/scene.css" in html
    assert "style=" not in html  # the CSP forbids inline styles
    env = catalog.get_environment("beach")
    assert env.scene_description.split(".")[0] in html
    for control in ("toggle-motion", "toggle-low-power", "toggle-sound", "sound-volume", "enter-vr"):
        assert f'id="{control}"' in html
    assert 'aria-live="polite"' in html
    definition = html.split('id="environment-definition">')[1].split("</script>")[0]
    assert json.loads(definition)["id"] == "beach"


async def test_preview_page_unknown_is_a_readable_404(client):
    resp = await client.get("/environments/moon")
    assert resp.status == 404
    assert resp.content_type == "text/html"
    assert "no such environment" in await resp.text()


async def test_three_is_served_from_node_modules(client):
    resp = await client.get("/vendor/three/build/three.module.js")
    assert resp.status == 200
    assert "javascript" in resp.content_type
    for addon in ("utils/BufferGeometryUtils.js", "objects/Sky.js", "objects/Water.js",
                  "geometries/RoundedBoxGeometry.js"):
        resp = await client.get(f"/vendor/three/examples/jsm/{addon}")
        assert resp.status == 200, addon


async def test_scene_icons_are_served_from_the_tabler_set(client):
    for name in ("microphone", "microphone-off", "hand-stop"):
        resp = await client.get(f"/vendor/tabler-icons/outline/{name}.svg")
        assert resp.status == 200, name
        assert "<svg" in await resp.text()


async def test_iwer_is_never_served(client):
    """The WebXR emulator is a test tool: Haven does not serve it to anyone."""
    for path in ("/vendor/iwer/build/iwer.min.js", "/vendor/three/../iwer/build/iwer.js",
                 "/static/js/iwer.js"):
        assert (await client.get(path)).status == 404, path


async def test_scene_modules_are_served(client):
    for path in ("scene/scene.js", "scene/builders.js", "scene/seats.js", "scene/random.js",
                 "scene/fallback.js", "scene/soundscape.js", "scene/sky.js", "scene/water.js",
                 "scene/props.js", "scene/interior.js", "scene/textures.js", "scene/avatars.js",
                 "scene/xr.js", "scene/icons.js", "environment-page.js"):
        resp = await client.get(f"/static/js/{path}")
        assert resp.status == 200, path
