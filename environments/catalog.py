"""The catalogue of environments: calm 3D places, each one a JSON data file in
``environments/definitions/``, validated on load into frozen dataclasses.

Adding a place is a matter of data: drop ``<id>.json`` in the definitions folder (the format
is described in docs/environments.md). The browser's scene module renders any valid
definition; the server synthesises its soundscape from the ``soundscape`` recipe.

* ``all_environments()`` / ``get_environment(id)``: the shipped definitions.
* ``load_definition(dict)``: validate one definition (raises ``DefinitionError``).
* ``seat_positions(env, n)``: where ``n`` people sit (the JS scene uses the same formula).
"""

from __future__ import annotations

import functools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media.soundscape import RecipeError, SoundscapeRecipe

DEFINITIONS_DIR = Path(__file__).resolve().parent / "definitions"
FORMAT_VERSION = 1
MAX_PEOPLE = 16  # group meetings hold 16
PROP_KINDS = ("palm", "rock", "pine", "broadleaf", "birch", "bush", "log", "plant", "bookshelf",
              "armchair")
GROUND_COVER_KINDS = ("grass", "fern", "flowers", "pebbles", "shells")
TERRAIN_KINDS = ("sand", "meadow", "snow", "stone")
FLOOR_KINDS = ("wood", "tile", "carpet")
WALLS = ("north", "south", "east", "west")  # north is -z: what seat 0 faces
LAMP_KINDS = ("floor", "table", "pendant")
MAX_GROUND_COVER = 9000  # instances in all (they are tiny, instanced, a few draw calls)
ID_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
COLOR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")
MIN_SEAT_GAP = 0.5  # metres between any two seats, whatever the group size


class DefinitionError(ValueError):
    """An environment definition is malformed; ``field`` is the dotted path of the problem."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class _Obj:
    """Reads one JSON object field by field, refusing unknown and missing fields."""

    def __init__(self, data: Any, where: str, fields: set[str], optional: set[str] = frozenset()):
        if not isinstance(data, dict):
            raise DefinitionError(where, "must be an object")
        unknown = sorted(set(data) - fields - optional)
        if unknown:
            raise DefinitionError(f"{where}.{unknown[0]}".lstrip("."), "is not a known field")
        missing = sorted(fields - set(data))
        if missing:
            raise DefinitionError(f"{where}.{missing[0]}".lstrip("."), "is required")
        self.data = data
        self.where = where

    def path(self, name: str) -> str:
        return f"{self.where}.{name}".lstrip(".")

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    def num(self, name: str, lo: float, hi: float, default: float | None = None) -> float:
        v = self.data.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) \
                or not lo <= v <= hi:
            raise DefinitionError(self.path(name), f"must be a number from {lo} to {hi}")
        return float(v)

    def int(self, name: str, lo: int, hi: int, default: int | None = None) -> int:
        v = self.data.get(name, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise DefinitionError(self.path(name), f"must be an integer from {lo} to {hi}")
        return v

    def text(self, name: str, max_len: int, min_len: int = 1) -> str:
        v = self.data.get(name)
        if not isinstance(v, str) or not min_len <= len(v.strip()) <= max_len:
            raise DefinitionError(self.path(name), f"must be text of {min_len} to {max_len} characters")
        return v.strip()

    def color(self, name: str) -> str:
        v = self.data.get(name)
        if not isinstance(v, str) or not COLOR_RE.match(v):
            raise DefinitionError(self.path(name), "must be a colour like #a1b2c3")
        return v.lower()

    def choice(self, name: str, options: tuple[str, ...]) -> str:
        v = self.data.get(name)
        if v not in options:
            raise DefinitionError(self.path(name), f"must be one of {', '.join(options)}")
        return v

    def flag(self, name: str, default: bool) -> bool:
        v = self.data.get(name, default)
        if not isinstance(v, bool):
            raise DefinitionError(self.path(name), "must be true or false")
        return v


@dataclass(frozen=True)
class PhysicalSky:
    """Parameters of three.js's Sky addon (Preetham's daylight model) and its clouds."""
    turbidity: float
    rayleigh: float
    mie_coefficient: float
    mie_directional_g: float
    cloud_coverage: float
    exposure: float


@dataclass(frozen=True)
class Sky:
    zenith: str
    horizon: str
    ground: str
    physical: PhysicalSky | None  # None: a simple gradient dome from the three colours


@dataclass(frozen=True)
class Light:
    time_of_day: str
    sun_elevation_deg: float
    sun_azimuth_deg: float
    sun_color: str
    sun_intensity: float
    ambient_color: str
    ambient_intensity: float
    drift: float  # 0..1: how much the light drifts (clouds, dapples, the sun's shimmer)


@dataclass(frozen=True)
class Fog:
    color: str
    near: float
    far: float


@dataclass(frozen=True)
class Terrain:
    kind: str
    color: str
    color_variation: float
    size: float
    relief: float
    detail: float  # 0..1: strength of the surface detail (sand ripples, grass, grit)


@dataclass(frozen=True)
class Water:
    color: str
    deep_color: str
    foam_color: str
    shore_z: float  # the shoreline runs along x at this z; the sea lies beyond it (z < shore_z)
    wave_height: float
    wave_speed: float
    reflections: bool  # mirror the sky and what stands on the shore (three's Water addon)


@dataclass(frozen=True)
class Atmosphere:
    clouds: int
    dapple: float
    light_shafts: int
    motes: int


@dataclass(frozen=True)
class PropGroup:
    kind: str
    count: int
    min_radius: float
    max_radius: float
    arc_deg: tuple[float, float]
    scale: tuple[float, float]
    colors: tuple[str, ...]
    sway: float
    min_spacing: float
    in_water: bool
    variants: int  # how many differently shaped models the group's instances share
    at: tuple[tuple[float, float, float], ...]  # fixed places (x, z, yaw_deg); empty: scattered


@dataclass(frozen=True)
class GroundCover:
    kind: str
    density: float  # instances per square metre of the annulus
    min_radius: float
    max_radius: float
    scale: tuple[float, float]
    colors: tuple[str, ...]

    @property
    def count(self) -> int:
        return round(self.density * math.pi * (self.max_radius ** 2 - self.min_radius ** 2))


@dataclass(frozen=True)
class Window:
    wall: str
    offset: float  # metres along the wall from its middle
    width: float
    height: float
    sill: float


@dataclass(frozen=True)
class Rug:
    radius: float
    color: str
    border_color: str


@dataclass(frozen=True)
class Interior:
    """A room around the circle: walls, floor, ceiling and windows onto the outdoors."""
    width: float  # along x
    depth: float  # along z
    height: float
    wall_color: str
    floor_kind: str
    floor_color: str
    ceiling_color: str
    trim_color: str
    windows: tuple[Window, ...]
    rug: Rug | None


@dataclass(frozen=True)
class Lamp:
    kind: str
    x: float
    z: float
    height: float
    color: str
    intensity: float
    range: float


@dataclass(frozen=True)
class Seating:
    radius: float
    min_spacing: float
    eye_height: float
    start_angle_deg: float
    center: tuple[float, float]
    max_people: int
    seat_color: str


@dataclass(frozen=True)
class Seat:
    index: int
    x: float
    y: float  # the seated listener's ear height, for spatial voice
    z: float
    yaw: float  # radians about +y; a seat with this yaw faces the circle's centre

    def to_dict(self) -> dict:
        return {"index": self.index, "x": round(self.x, 4), "y": round(self.y, 4),
                "z": round(self.z, 4), "yaw": round(self.yaw, 6)}


@dataclass(frozen=True)
class Environment:
    id: str
    name: str
    description: str
    scene_description: str
    seed: int
    motion_intensity: float
    bounds_radius: float
    sky: Sky
    light: Light
    fog: Fog
    terrain: Terrain
    water: Water | None
    atmosphere: Atmosphere
    props: tuple[PropGroup, ...]
    seating: Seating
    soundscape: SoundscapeRecipe
    ground_cover: tuple[GroundCover, ...]
    interior: Interior | None
    lamps: tuple[Lamp, ...]
    order: int  # where the place comes in lists (lower first; ties by id)
    source: dict  # the validated JSON as loaded, served to the browser

    def summary(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "time_of_day": self.light.time_of_day,
            "motion_intensity": self.motion_intensity,
            "max_people": self.seating.max_people,
            "preview_url": f"/environments/{self.id}",
            "soundscape_url": soundscape_url(self.id),
        }

    def to_dict(self) -> dict:
        """The full definition, as the browser's scene module takes it."""
        data = json.loads(json.dumps(self.source))
        data["soundscape_url"] = soundscape_url(self.id)
        data["preview_url"] = f"/environments/{self.id}"
        return data


def soundscape_url(env_id: str) -> str:
    return f"/soundscapes/{env_id}.ogg"


def _pair(obj: _Obj, name: str, lo: float, hi: float, ordered: bool = True) -> tuple[float, float]:
    v = obj.raw(name)
    if not (isinstance(v, list) and len(v) == 2 and all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            and lo <= x <= hi for x in v)):
        raise DefinitionError(obj.path(name), f"must be two numbers from {lo} to {hi}")
    if ordered and v[0] > v[1]:
        raise DefinitionError(obj.path(name), "must be [low, high]")
    return float(v[0]), float(v[1])


def load_definition(data: Any) -> Environment:
    """Validate a definition (parsed JSON) into an ``Environment``."""
    top = _Obj(data, "", {
        "format", "id", "name", "description", "scene_description", "seed", "motion_intensity",
        "bounds_radius", "sky", "light", "fog", "terrain", "water", "atmosphere", "props",
        "seating", "soundscape",
    }, {"ground_cover", "interior", "lamps", "order"})
    if top.raw("format") != FORMAT_VERSION:
        raise DefinitionError("format", f"must be {FORMAT_VERSION}")
    env_id = top.raw("id")
    if not isinstance(env_id, str) or not ID_RE.match(env_id):
        raise DefinitionError("id", "must be lower-case letters, digits and dashes (max 32)")
    bounds = top.num("bounds_radius", 20, 1000)

    s = _Obj(top.raw("sky"), "sky", {"zenith", "horizon", "ground"}, {"physical"})
    sky = Sky(s.color("zenith"), s.color("horizon"), s.color("ground"),
              _physical_sky(s.raw("physical")) if s.has("physical") else None)

    li = _Obj(top.raw("light"), "light", {
        "time_of_day", "sun_elevation_deg", "sun_azimuth_deg", "sun_color", "sun_intensity",
        "ambient_color", "ambient_intensity", "drift"})
    light = Light(li.text("time_of_day", 40), li.num("sun_elevation_deg", -10, 90),
                  li.num("sun_azimuth_deg", -360, 360), li.color("sun_color"),
                  li.num("sun_intensity", 0, 10), li.color("ambient_color"),
                  li.num("ambient_intensity", 0, 10), li.num("drift", 0, 1))

    f = _Obj(top.raw("fog"), "fog", {"color", "near", "far"})
    fog = Fog(f.color("color"), f.num("near", 0, 2000), f.num("far", 1, 5000))
    if fog.far <= fog.near:
        raise DefinitionError("fog.far", "must be beyond fog.near")

    t = _Obj(top.raw("terrain"), "terrain", {"kind", "color", "color_variation", "size", "relief"},
             {"detail"})
    terrain = Terrain(t.choice("kind", TERRAIN_KINDS), t.color("color"),
                      t.num("color_variation", 0, 0.5), t.num("size", 20, 2000),
                      t.num("relief", 0, 5), t.num("detail", 0, 1, 0.5))
    if terrain.size < bounds:
        raise DefinitionError("terrain.size", "must be at least bounds_radius")

    water = None
    if top.raw("water") is not None:
        w = _Obj(top.raw("water"), "water", {
            "color", "deep_color", "foam_color", "shore_z", "wave_height", "wave_speed"},
            {"reflections"})
        water = Water(w.color("color"), w.color("deep_color"), w.color("foam_color"),
                      w.num("shore_z", -bounds, bounds), w.num("wave_height", 0, 2),
                      w.num("wave_speed", 0, 5), w.flag("reflections", True))

    a = _Obj(top.raw("atmosphere"), "atmosphere", {"clouds", "dapple", "light_shafts", "motes"})
    atmosphere = Atmosphere(a.int("clouds", 0, 24), a.num("dapple", 0, 1),
                            a.int("light_shafts", 0, 12), a.int("motes", 0, 200))

    props_raw = top.raw("props")
    if not isinstance(props_raw, list) or len(props_raw) > 10:
        raise DefinitionError("props", "must be a list of at most 10 prop groups")
    props = tuple(_prop_group(raw, f"props[{i}]", bounds) for i, raw in enumerate(props_raw))
    if sum(g.count for g in props) > 400:
        raise DefinitionError("props", "at most 400 props in all (keep scenes light)")

    cover_raw = top.raw("ground_cover", [])
    if not isinstance(cover_raw, list) or len(cover_raw) > 6:
        raise DefinitionError("ground_cover", "must be a list of at most 6 groups")
    cover = tuple(_ground_cover(raw, f"ground_cover[{i}]", bounds)
                  for i, raw in enumerate(cover_raw))
    if sum(g.count for g in cover) > MAX_GROUND_COVER:
        raise DefinitionError("ground_cover", f"at most {MAX_GROUND_COVER} plants and stones in "
                                              "all (lower the densities)")

    st = _Obj(top.raw("seating"), "seating", {"radius", "eye_height", "max_people", "seat_color"},
              {"min_spacing", "start_angle_deg", "center"})
    seating = Seating(
        radius=st.num("radius", 0.8, 10), min_spacing=st.num("min_spacing", 0.6, 3, 1.15),
        eye_height=st.num("eye_height", 0.8, 1.6), start_angle_deg=st.num(
            "start_angle_deg", -360, 360, 0.0),
        center=_pair(st, "center", -bounds, bounds, ordered=False) if st.has("center")
        else (0.0, 0.0),
        max_people=st.int("max_people", 1, MAX_PEOPLE), seat_color=st.color("seat_color"),
    )

    interior = _interior(top.raw("interior")) if top.raw("interior") is not None else None
    lamps_raw = top.raw("lamps", [])
    if not isinstance(lamps_raw, list) or len(lamps_raw) > 4:
        raise DefinitionError("lamps", "must be a list of at most 4 lamps")
    lamps = tuple(_lamp(raw, f"lamps[{i}]", bounds) for i, raw in enumerate(lamps_raw))

    try:
        recipe = SoundscapeRecipe.from_dict(top.raw("soundscape"))
    except RecipeError as exc:
        raise DefinitionError("soundscape", str(exc)) from None

    env = Environment(
        id=env_id, name=top.text("name", 40), description=top.text("description", 200),
        scene_description=top.text("scene_description", 1200, 20),
        seed=top.int("seed", 0, 2**32 - 1), motion_intensity=top.num("motion_intensity", 0, 1),
        bounds_radius=bounds, sky=sky, light=light, fog=fog, terrain=terrain, water=water,
        atmosphere=atmosphere, props=props, seating=seating, soundscape=recipe,
        ground_cover=cover, interior=interior, lamps=lamps, order=top.int("order", 0, 1000, 100),
        source=json.loads(json.dumps(data)),
    )
    _check_circle(env)
    return env


def _physical_sky(raw: Any) -> PhysicalSky:
    p = _Obj(raw, "sky.physical", {"turbidity", "rayleigh", "mie_coefficient",
                                    "mie_directional_g"}, {"cloud_coverage", "exposure"})
    return PhysicalSky(p.num("turbidity", 0, 20), p.num("rayleigh", 0, 4),
                       p.num("mie_coefficient", 0, 0.1), p.num("mie_directional_g", 0, 0.999),
                       p.num("cloud_coverage", 0, 1, 0.0), p.num("exposure", 0.05, 2, 0.5))


def _prop_group(raw: Any, where: str, bounds: float) -> PropGroup:
    """A group is scattered (count in an annulus) or placed (``at``: fixed spots)."""
    placed = isinstance(raw, dict) and "at" in raw
    scatter = {"count", "min_radius", "max_radius", "arc_deg"}
    p = _Obj(raw, where, {"kind", "colors"} | (set() if placed else scatter | {"scale"}),
             {"sway", "min_spacing", "in_water", "variants", "scale"} | ({"at"} if placed else set()))
    colors = p.raw("colors")
    if not isinstance(colors, list) or not 1 <= len(colors) <= 4 or not all(
            isinstance(c, str) and COLOR_RE.match(c) for c in colors):
        raise DefinitionError(p.path("colors"), "must be 1 to 4 colours like #a1b2c3")
    at: tuple[tuple[float, float, float], ...] = ()
    if placed:
        spots = p.raw("at")
        if not isinstance(spots, list) or not 1 <= len(spots) <= 40:
            raise DefinitionError(p.path("at"), "must be a list of 1 to 40 places")
        parsed = []
        for k, spot in enumerate(spots):
            if not (isinstance(spot, list) and len(spot) in (2, 3) and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                    for v in spot)) or max(abs(spot[0]), abs(spot[1])) > bounds \
                    or (len(spot) == 3 and abs(spot[2]) > 360):
                raise DefinitionError(f"{p.path('at')}[{k}]",
                                      "must be [x, z] or [x, z, yaw_deg] inside bounds_radius")
            parsed.append((float(spot[0]), float(spot[1]), float(spot[2]) if len(spot) == 3 else 0.0))
        at = tuple(parsed)
    group = PropGroup(
        kind=p.choice("kind", PROP_KINDS),
        count=len(at) if placed else p.int("count", 0, 200),
        min_radius=0.0 if placed else p.num("min_radius", 0, bounds),
        max_radius=0.0 if placed else p.num("max_radius", 0, bounds),
        arc_deg=(-180.0, 180.0) if placed else _pair(p, "arc_deg", -360, 360),
        scale=_pair(p, "scale", 0.05, 10) if p.has("scale") else (1.0, 1.0),
        colors=tuple(c.lower() for c in colors), sway=p.num("sway", 0, 2, 0.0),
        min_spacing=p.num("min_spacing", 0, 50, 1.0), in_water=p.flag("in_water", False),
        variants=p.int("variants", 1, 4, 1 if placed else 3), at=at,
    )
    if group.max_radius < group.min_radius:
        raise DefinitionError(p.path("max_radius"), "must be at least min_radius")
    return group


def _ground_cover(raw: Any, where: str, bounds: float) -> GroundCover:
    g = _Obj(raw, where, {"kind", "density", "min_radius", "max_radius", "colors"}, {"scale"})
    colors = g.raw("colors")
    if not isinstance(colors, list) or not 1 <= len(colors) <= 4 or not all(
            isinstance(c, str) and COLOR_RE.match(c) for c in colors):
        raise DefinitionError(g.path("colors"), "must be 1 to 4 colours like #a1b2c3")
    cover = GroundCover(g.choice("kind", GROUND_COVER_KINDS), g.num("density", 0, 40),
                        g.num("min_radius", 0, bounds), g.num("max_radius", 0, bounds),
                        _pair(g, "scale", 0.05, 5) if g.has("scale") else (0.7, 1.3),
                        tuple(c.lower() for c in colors))
    if cover.max_radius < cover.min_radius:
        raise DefinitionError(g.path("max_radius"), "must be at least min_radius")
    return cover


def _interior(raw: Any) -> Interior:
    r = _Obj(raw, "interior", {"width", "depth", "height", "wall_color", "floor_kind",
                               "floor_color", "ceiling_color", "windows"},
             {"trim_color", "rug"})
    windows_raw = r.raw("windows")
    if not isinstance(windows_raw, list) or len(windows_raw) > 6:
        raise DefinitionError("interior.windows", "must be a list of at most 6 windows")
    width, depth, height = r.num("width", 5, 40), r.num("depth", 5, 40), r.num("height", 2.2, 8)
    windows = []
    for i, wr in enumerate(windows_raw):
        w = _Obj(wr, f"interior.windows[{i}]", {"wall", "width", "height", "sill"}, {"offset"})
        win = Window(w.choice("wall", WALLS), w.num("offset", -20, 20, 0.0),
                     w.num("width", 0.4, 30), w.num("height", 0.4, 8), w.num("sill", 0, 4))
        span = width if win.wall in ("north", "south") else depth
        if abs(win.offset) + win.width / 2 > span / 2 - 0.2:
            raise DefinitionError(f"interior.windows[{i}]", "does not fit in its wall")
        if win.sill + win.height > height - 0.1:
            raise DefinitionError(f"interior.windows[{i}].height", "reaches above the ceiling")
        windows.append(win)
    rug = None
    if r.raw("rug") is not None:
        g = _Obj(r.raw("rug"), "interior.rug", {"radius", "color", "border_color"})
        rug = Rug(g.num("radius", 0.5, 15), g.color("color"), g.color("border_color"))
    return Interior(width, depth, height, r.color("wall_color"),
                    r.choice("floor_kind", FLOOR_KINDS), r.color("floor_color"),
                    r.color("ceiling_color"),
                    r.color("trim_color") if r.has("trim_color") else r.color("wall_color"),
                    tuple(windows), rug)


def _lamp(raw: Any, where: str, bounds: float) -> Lamp:
    m = _Obj(raw, where, {"kind", "x", "z", "color", "intensity"}, {"height", "range"})
    kind = m.choice("kind", LAMP_KINDS)
    default_height = {"floor": 1.55, "table": 0.75, "pendant": 2.3}[kind]
    return Lamp(kind, m.num("x", -bounds, bounds), m.num("z", -bounds, bounds),
                m.num("height", 0.3, 6, default_height), m.color("color"),
                m.num("intensity", 0, 20), m.num("range", 1, 40, 8.0))


def _check_circle(env: Environment) -> None:
    """The circle, at its largest, must sit inside the scene, on dry land, clear of props,
    and inside the room's walls when there is a room."""
    cx, cz = env.seating.center
    r = circle_radius(env.seating, env.seating.max_people)
    if math.hypot(cx, cz) + r + 1.0 > env.bounds_radius:
        raise DefinitionError("seating", "the circle of seats does not fit inside bounds_radius")
    if env.water is not None and cz - r - 1.0 < env.water.shore_z:
        raise DefinitionError("seating", "the circle of seats reaches into the water")
    room = env.interior
    if room is not None:
        if r + 1.0 > min(room.width, room.depth) / 2:
            raise DefinitionError("interior", "the room is too small for the circle of seats")
        for i, lamp in enumerate(env.lamps):
            if abs(lamp.x - cx) > room.width / 2 - 0.2 or abs(lamp.z - cz) > room.depth / 2 - 0.2:
                raise DefinitionError(f"lamps[{i}]", "must stand inside the room")
            if lamp.height > room.height - 0.1:
                raise DefinitionError(f"lamps[{i}].height", "reaches above the ceiling")
    for i, lamp in enumerate(env.lamps):
        if math.hypot(lamp.x - cx, lamp.z - cz) < r + 0.8:
            raise DefinitionError(f"lamps[{i}]", "must stand outside the circle of seats")
    for i, g in enumerate(env.props):
        for k, (x, z, _yaw) in enumerate(g.at):
            if math.hypot(x - cx, z - cz) < r + 1.0:
                raise DefinitionError(f"props[{i}].at[{k}]",
                                      "must stand at least 1 m outside the circle of seats")
    if math.hypot(cx, cz) > 0.01:
        return
    for i, g in enumerate(env.props):
        if g.count and not g.at and g.min_radius < r + 1.5:
            raise DefinitionError(f"props[{i}].min_radius",
                                  "props must stay at least 1.5 m outside the circle of seats")
    for i, g in enumerate(env.ground_cover):
        if g.count and g.min_radius < r + 0.6:
            raise DefinitionError(f"ground_cover[{i}].min_radius",
                                  "ground cover must stay at least 0.6 m outside the circle")


def circle_radius(seating: Seating, n: int) -> float:
    """The circle grows when needed so neighbours are at least ``min_spacing`` apart."""
    if n <= 1:
        return seating.radius
    return max(seating.radius, seating.min_spacing / (2 * math.sin(math.pi / n)))


def seat_positions(env: Environment, n: int) -> list[Seat]:
    """Where ``n`` people sit (1..max_people): evenly round the circle, seat 0 at
    ``start_angle_deg`` (0 = on the +z side, facing -z), all facing the centre. ``y`` is the
    seated ear height. web/static/js/scene/seats.js computes exactly the same."""
    seating = env.seating
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= seating.max_people:
        raise ValueError(f"group size must be from 1 to {seating.max_people}")
    r = circle_radius(seating, n)
    cx, cz = seating.center
    start = math.radians(seating.start_angle_deg)
    seats = []
    for i in range(n):
        theta = start + 2 * math.pi * i / n
        seats.append(Seat(i, cx + r * math.sin(theta), seating.eye_height,
                          cz + r * math.cos(theta), theta))
    return seats


def load_file(path: Path) -> Environment:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DefinitionError(path.name, f"is not valid JSON: {exc}") from None
    env = load_definition(data)
    if env.id != path.stem:
        raise DefinitionError("id", f"must match the file name ({path.stem!r})")
    return env


@functools.cache
def _catalog() -> dict[str, Environment]:
    envs = [load_file(p) for p in sorted(DEFINITIONS_DIR.glob("*.json"))]
    envs.sort(key=lambda e: (e.order, e.id))
    return {e.id: e for e in envs}


def all_environments() -> list[Environment]:
    return list(_catalog().values())


def get_environment(env_id: str) -> Environment | None:
    return _catalog().get(env_id)
