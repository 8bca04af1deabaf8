// A room around the circle, from the definition's `interior` and `lamps`: walls with window
// openings (and their frames and glass), a wooden floor, a ceiling, a rug, and lamps that
// light the room warmly. Walls and ceiling cast shadows, so the daylight comes in through
// the windows only. Five or six draw calls, whatever the room.

import * as THREE from "three";
import { mergeGeometries } from "three/addons/utils/BufferGeometryUtils.js";
import { floorTexture } from "./textures.js";

const WALL_THICKNESS = 0.22;
const LAMP_HEIGHTS = { floor: 1.55, table: 0.75, pendant: 2.3 };

function coloured(geometry, color, shade = () => 1) {
  const g = geometry.index ? geometry.toNonIndexed() : geometry;
  for (const name of Object.keys(g.attributes)) if (name !== "position" && name !== "normal") g.deleteAttribute(name);
  g.computeVertexNormals();
  const p = g.attributes.position;
  const c = new Float32Array(p.count * 3);
  for (let i = 0; i < p.count; i++) {
    const k = shade(p.getX(i), p.getY(i), p.getZ(i));
    c[i * 3] = color.r * k;
    c[i * 3 + 1] = color.g * k;
    c[i * 3 + 2] = color.b * k;
  }
  g.setAttribute("color", new THREE.BufferAttribute(c, 3));
  return g;
}

function box(w, h, d, x, y, z) {
  const g = new THREE.BoxGeometry(w, h, d);
  g.translate(x, y, z);
  return g;
}

/** Where each wall is: its span, and a transform from wall coordinates (u along the wall,
 * v up, facing into the room) to the room. */
function wallFrames(room) {
  const W = room.width / 2, D = room.depth / 2;
  return {
    north: { span: room.width, place: (g) => g.translate(0, 0, -D) },
    south: { span: room.width, place: (g) => g.rotateY(Math.PI).translate(0, 0, D) },
    west: { span: room.depth, place: (g) => g.rotateY(Math.PI / 2).translate(-W, 0, 0) },
    east: { span: room.depth, place: (g) => g.rotateY(-Math.PI / 2).translate(W, 0, 0) },
  };
}

function glassMaterial(uniforms) {
  return new THREE.ShaderMaterial({
    uniforms: { time: uniforms.time, tint: { value: new THREE.Color("#dfe8ec") } },
    vertexShader: `varying vec2 vUv; varying vec3 vWorld;
      void main() {
        vUv = uv;
        vec4 w = modelMatrix * vec4(position, 1.0);
        vWorld = w.xyz;
        gl_Position = projectionMatrix * viewMatrix * w;
      }`,
    // faint glass, and a few drops of rain sliding slowly down it
    fragmentShader: `uniform float time; uniform vec3 tint; varying vec2 vUv; varying vec3 vWorld;
      float hash(float n) { return fract(sin(n * 127.1) * 43758.5453); }
      void main() {
        vec2 p = vec2(vWorld.x + vWorld.z, vWorld.y);
        float col = floor(p.x * 9.0);
        float speed = 0.04 + 0.05 * hash(col);
        float y = fract(p.y * 0.6 + time * speed + hash(col + 3.1));
        float x = fract(p.x * 9.0) - 0.5;
        float drop = smoothstep(0.12, 0.0, abs(x)) * smoothstep(0.0, 0.02, y) * smoothstep(0.08, 0.02, y);
        float trail = smoothstep(0.05, 0.0, abs(x)) * smoothstep(0.02, 0.4, y) * (1.0 - y) * 0.35;
        float show = step(0.55, hash(col + 7.7));
        float a = 0.05 + show * (drop * 0.5 + trail * 0.25);
        gl_FragColor = vec4(tint, a);
        #include <colorspace_fragment>
      }`,
    transparent: true, depthWrite: false, side: THREE.DoubleSide,
  });
}

/** The room (a Group) and its lamps' lights, for the scene to add. */
export function buildInterior(def, uniforms, lowPower) {
  const room = def.interior;
  const [cx, cz] = def.seating.center ?? [0, 0];
  const group = new THREE.Group();
  group.name = "interior";
  group.position.set(cx, 0, cz);
  const textures = [];
  const wallColor = new THREE.Color(room.wall_color);
  const ceilingColor = new THREE.Color(room.ceiling_color);
  const trimColor = new THREE.Color(room.trim_color ?? room.wall_color);
  const H = room.height;
  const shell = [], trim = [], panes = [];
  const frames = wallFrames(room);
  for (const [wall, frame] of Object.entries(frames)) {
    const half = frame.span / 2;
    const shape = new THREE.Shape();
    shape.moveTo(-half, 0).lineTo(half, 0).lineTo(half, H).lineTo(-half, H).lineTo(-half, 0);
    const windows = room.windows.filter((w) => w.wall === wall);
    for (const w of windows) {
      const x0 = w.offset - w.width / 2, x1 = w.offset + w.width / 2;
      const y0 = w.sill, y1 = w.sill + w.height;
      const hole = new THREE.Path();
      hole.moveTo(x0, y0).lineTo(x0, y1).lineTo(x1, y1).lineTo(x1, y0).lineTo(x0, y0);
      shape.holes.push(hole);
      const t = WALL_THICKNESS, f = 0.06;
      // reveals: the depth of the wall around the opening
      const reveal = [
        box(w.width, 0.02, t, w.offset, y0, -t / 2), box(w.width, 0.02, t, w.offset, y1, -t / 2),
        box(0.02, w.height, t, x0, (y0 + y1) / 2, -t / 2), box(0.02, w.height, t, x1, (y0 + y1) / 2, -t / 2),
      ];
      const bars = [
        box(w.width + 2 * f, f, 0.05, w.offset, y1 + f / 2, 0.0), // head
        box(w.width + 2 * f + 0.1, 0.05, 0.2, w.offset, y0 - 0.025, 0.07), // sill
        box(f, w.height, 0.05, x0 - f / 2, (y0 + y1) / 2, 0.0),
        box(f, w.height, 0.05, x1 + f / 2, (y0 + y1) / 2, 0.0),
      ];
      const mullions = Math.max(1, Math.round(w.width / 1.1));
      for (let m = 1; m < mullions; m++) {
        bars.push(box(0.045, w.height, 0.05, x0 + (w.width * m) / mullions, (y0 + y1) / 2, -t * 0.6));
      }
      bars.push(box(w.width, 0.04, 0.05, w.offset, y0 + w.height * 0.62, -t * 0.6));
      for (const g of reveal) shell.push(frame.place(coloured(g, wallColor, () => 0.92)));
      for (const g of bars) trim.push(frame.place(coloured(g, trimColor)));
      const pane = new THREE.PlaneGeometry(w.width, w.height);
      pane.translate(w.offset, (y0 + y1) / 2, -t * 0.62);
      panes.push(frame.place(pane));
    }
    const wallGeo = new THREE.ShapeGeometry(shape);
    // a little darker towards the floor and the corners: soft, cheap ambient occlusion
    shell.push(frame.place(coloured(wallGeo, wallColor, (x, y) =>
      0.84 + 0.16 * Math.min(1, y / H * 1.6) - 0.06 * Math.max(0, Math.abs(x) / half - 0.85) / 0.15)));
    trim.push(frame.place(coloured(box(frame.span, 0.12, 0.03, 0, 0.06, 0.015), trimColor, () => 0.95)));
    trim.push(frame.place(coloured(box(frame.span, 0.06, 0.05, 0, H - 0.03, 0.025), trimColor)));
  }
  const ceiling = new THREE.PlaneGeometry(room.width, room.depth);
  ceiling.rotateX(Math.PI / 2);
  ceiling.translate(0, H, 0);
  shell.push(coloured(ceiling, ceilingColor, () => 0.9));
  const shellMesh = new THREE.Mesh(mergeGeometries(shell),
    new THREE.MeshLambertMaterial({ vertexColors: true, side: THREE.DoubleSide }));
  shellMesh.name = "room:walls";
  shellMesh.castShadow = true;
  shellMesh.receiveShadow = true;
  const trimMesh = new THREE.Mesh(mergeGeometries(trim), new THREE.MeshLambertMaterial({ vertexColors: true }));
  trimMesh.name = "room:trim";
  trimMesh.castShadow = true;
  trimMesh.receiveShadow = true;
  group.add(shellMesh, trimMesh);
  if (panes.length) {
    const glass = new THREE.Mesh(mergeGeometries(panes), glassMaterial(uniforms));
    glass.name = "room:glass";
    glass.renderOrder = 2;
    group.add(glass);
  }

  // the floor, and a round rug under the circle
  const map = floorTexture(def.seed, room.floor_kind, lowPower ? 256 : 512);
  const tile = room.floor_kind === "wood" ? 1.8 : 2.4;
  map.repeat.set(room.width / tile, room.depth / tile);
  textures.push(map);
  const floorGeo = new THREE.PlaneGeometry(room.width, room.depth);
  floorGeo.rotateX(-Math.PI / 2);
  const floor = new THREE.Mesh(floorGeo, new THREE.MeshLambertMaterial({ color: room.floor_color, map }));
  floor.name = "room:floor";
  floor.receiveShadow = true;
  group.add(floor);
  if (room.rug) {
    const { radius, color, border_color: border } = room.rug;
    // woven rings, a darker band near the edge, and a border
    const inner = coloured(new THREE.RingGeometry(0.001, radius - 0.2, 64, 24), new THREE.Color(color), (x, y) => {
      const r = Math.hypot(x, y);
      const band = (r > radius - 0.75 && r < radius - 0.5) || (r > 1.1 && r < 1.25) ? 0.78 : 1;
      return (0.975 + 0.025 * Math.cos(r * 40)) * band;
    });
    const edge = coloured(new THREE.RingGeometry(radius - 0.2, radius, 64, 1), new THREE.Color(border));
    const rugGeo = mergeGeometries([inner, edge]);
    rugGeo.rotateX(-Math.PI / 2);
    rugGeo.translate(0, 0.012, 0);
    const rug = new THREE.Mesh(rugGeo, new THREE.MeshLambertMaterial({ vertexColors: true }));
    rug.name = "room:rug";
    rug.receiveShadow = true;
    group.add(rug);
  }

  const lights = buildLamps(def, group);
  return { group, lights, textures };
}

/** Lamps: their bodies in two merged meshes (metal and glowing shades) and a warm point
 * light in each shade (no shadow: a point light's shadow is six extra passes). */
function buildLamps(def, group) {
  const [cx, cz] = def.seating.center ?? [0, 0];
  const bodies = [], shades = [], lights = [];
  for (const lamp of def.lamps ?? []) {
    const x = lamp.x - cx, z = lamp.z - cz;
    const h = lamp.height ?? LAMP_HEIGHTS[lamp.kind] ?? 1.5; // the same defaults as catalog.py
    const parts = [];
    let shadeY = h;
    if (lamp.kind === "pendant") {
      const ceiling = def.interior ? def.interior.height : h + 1;
      parts.push(box(0.012, ceiling - h, 0.012, x, (ceiling + h) / 2, z));
    } else {
      const base = new THREE.CylinderGeometry(0.16, 0.19, 0.035, 20);
      base.translate(x, 0.018, z);
      parts.push(base);
      const pole = new THREE.CylinderGeometry(0.014, 0.014, h - 0.1, 8);
      pole.translate(x, (h - 0.1) / 2, z);
      parts.push(pole);
      shadeY = h - 0.05;
    }
    for (const g of parts) bodies.push(coloured(g, new THREE.Color("#3a3430")));
    const shade = new THREE.CylinderGeometry(0.16, 0.25, 0.3, 24, 1, true);
    shade.translate(x, shadeY, z);
    shades.push(coloured(shade, new THREE.Color(lamp.color)));
    const light = new THREE.PointLight(new THREE.Color(lamp.color), lamp.intensity, lamp.range ?? 8, 1.6);
    light.position.set(x, shadeY - 0.05, z);
    light.name = `lamp:${lamp.kind}`;
    group.add(light);
    lights.push(light);
  }
  if (bodies.length) {
    const mesh = new THREE.Mesh(mergeGeometries(bodies), new THREE.MeshLambertMaterial({ vertexColors: true }));
    mesh.name = "lamps";
    mesh.castShadow = true;
    group.add(mesh);
  }
  if (shades.length) {
    const mesh = new THREE.Mesh(mergeGeometries(shades), new THREE.MeshBasicMaterial({
      vertexColors: true, side: THREE.DoubleSide, fog: false,
    }));
    mesh.name = "lamp-shades";
    group.add(mesh);
  }
  return lights;
}
