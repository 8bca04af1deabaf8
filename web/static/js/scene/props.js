// Props (trees, rocks, plants, furniture) and ground cover (grass, ferns, flowers, pebbles,
// shells). Each prop group has a few shape variants; every variant part is one InstancedMesh,
// and each ground-cover group is one or two, so even a dense forest stays a few dozen draw
// calls. Every instance gets its own size, proportions, lean and tint from the seed.

import * as THREE from "three";
import { mergeGeometries } from "three/addons/utils/BufferGeometryUtils.js";
import { RoundedBoxGeometry } from "three/addons/geometries/RoundedBoxGeometry.js";
import { mixSeed, mulberry32, range } from "./random.js";

const DEG = Math.PI / 180;

// --- geometry helpers ----------------------------------------------------------------------

/** Non-indexed, no UVs, flat normals, with a `color` attribute from shade(x, y, z). */
function prep(geometry, shade = () => 1) {
  const g = geometry.index ? geometry.toNonIndexed() : geometry;
  if (g.attributes.uv) g.deleteAttribute("uv");
  if (g.attributes.uv1) g.deleteAttribute("uv1");
  g.computeVertexNormals();
  const p = g.attributes.position;
  const colors = new Float32Array(p.count * 3);
  for (let i = 0; i < p.count; i++) {
    const s = shade(p.getX(i), p.getY(i), p.getZ(i), i);
    const [r, gg, b] = Array.isArray(s) ? s : [s, s, s];
    colors[i * 3] = r;
    colors[i * 3 + 1] = gg;
    colors[i * 3 + 2] = b;
  }
  g.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  return g;
}

/** Merge shapes made by different three.js generators: positions only (prep adds the rest). */
function merge(list) {
  return mergeGeometries(list.filter(Boolean).map((g) => {
    const flat = g.index ? g.toNonIndexed() : g;
    const only = new THREE.BufferGeometry();
    only.setAttribute("position", flat.attributes.position);
    return only;
  }));
}

function blob(radius, detail, rand, squash = 1, jitter = 0.18) {
  const g = new THREE.IcosahedronGeometry(radius, detail);
  const p = g.attributes.position;
  const seen = new Map();
  for (let i = 0; i < p.count; i++) {
    const key = `${p.getX(i).toFixed(3)},${p.getY(i).toFixed(3)},${p.getZ(i).toFixed(3)}`;
    if (!seen.has(key)) seen.set(key, 1 + (rand() - 0.5) * 2 * jitter);
    const k = seen.get(key);
    p.setXYZ(i, p.getX(i) * k, p.getY(i) * k * squash, p.getZ(i) * k);
  }
  return g;
}

/** A leaf or blade: a tapered strip from (0,0,0) out along +x, arching by `droop`. */
function strip(length, width, segments, droop, lift = 0, taper = 0.9) {
  const g = new THREE.PlaneGeometry(length, width, segments, 1);
  const p = g.attributes.position;
  for (let k = 0; k < p.count; k++) {
    const x = p.getX(k) + length / 2;
    const f = x / length;
    const w = p.getY(k) * (1 - f * taper) * Math.sin(Math.min(1, f * 6 + 0.25) * Math.PI / 2);
    p.setXYZ(k, x, lift * f - droop * f * f, w);
  }
  return g;
}

const heightShade = (lo, hi, dark = 0.55, light = 1.08) => (x, y) => {
  const f = Math.min(1, Math.max(0, (y - lo) / (hi - lo)));
  return dark + (light - dark) * f;
};

// --- prop kinds: each returns parts [{geometry, color, sway, flutter, doubleSide}] ---------

function jaggedCone(rand, radius, height, y, droop) {
  const cone = new THREE.ConeGeometry(radius, height, 12, 1, false);
  const p = cone.attributes.position;
  const tips = Array.from({ length: 13 }, (_, k) => (k % 2 ? 1.16 : 0.86) * range(rand, 0.9, 1.1));
  for (let i = 0; i < p.count; i++) {
    const vy = p.getY(i);
    if (vy < -height / 2 + 1e-3) {
      const a = Math.atan2(p.getZ(i), p.getX(i));
      const k = Math.round(((a + Math.PI) / (2 * Math.PI)) * 12) % 12;
      const rr = Math.hypot(p.getX(i), p.getZ(i));
      if (rr > radius * 0.5) {
        p.setXYZ(i, p.getX(i) * tips[k], vy - droop * (tips[k] - 0.8), p.getZ(i) * tips[k]);
      }
    }
  }
  cone.translate(range(rand, -0.08, 0.08), y, range(rand, -0.08, 0.08));
  return cone;
}

const KINDS = {
  pine(rand) {
    const trunkH = range(rand, 4.5, 6);
    const trunk = new THREE.CylinderGeometry(0.13, 0.3, trunkH, 7);
    trunk.translate(0, trunkH / 2, 0);
    const tiers = Math.round(range(rand, 5, 7));
    const cones = [];
    for (let i = 0; i < tiers; i++) {
      const f = i / (tiers - 1);
      const r = (2.7 - 2.1 * f) * range(rand, 0.9, 1.1);
      const h = 3.2 - 1.3 * f;
      cones.push(jaggedCone(rand, r, h, 2.6 + f * 7.2, 0.35));
    }
    const top = 2.6 + 7.2 + 1.5;
    return [
      { geometry: prep(trunk, heightShade(0, 3, 0.55, 0.95)), color: 0, sway: 0.006 },
      { geometry: prep(merge(cones), (x, y, z) => {
        const inner = Math.min(1, Math.hypot(x, z) / 2.2);
        return (0.5 + 0.45 * inner) * (0.85 + 0.3 * (y / top));
      }), color: 1, sway: 0.006, flutter: 0.012 },
    ];
  },
  broadleaf(rand) {
    const trunkH = range(rand, 3.6, 4.6);
    const trunk = new THREE.CylinderGeometry(0.16, 0.34, trunkH, 7, 3);
    trunk.translate(0, trunkH / 2, 0);
    const branches = [];
    for (let i = 0; i < 3; i++) {
      const b = new THREE.CylinderGeometry(0.05, 0.11, 2.0, 5);
      b.translate(0, 1, 0);
      b.rotateZ(range(rand, 0.5, 0.9) * (i % 2 ? 1 : -1));
      b.rotateY(rand() * Math.PI * 2);
      b.translate(0, trunkH * range(rand, 0.7, 0.9), 0);
      branches.push(b);
    }
    const lumps = [];
    const n = Math.round(range(rand, 6, 9));
    for (let i = 0; i < n; i++) {
      const a = (i / n) * Math.PI * 2 + rand();
      const r = i === 0 ? 0 : range(rand, 0.9, 1.9);
      const b = blob(range(rand, 1.1, 1.8), 1, rand, 0.78);
      b.translate(Math.cos(a) * r, trunkH + range(rand, 0.4, 2.0) + (i === 0 ? 1.0 : 0), Math.sin(a) * r);
      lumps.push(b);
    }
    const top = trunkH + 3.5;
    return [
      { geometry: prep(merge([trunk, ...branches]), heightShade(0, 3, 0.55, 0.95)), color: 0, sway: 0.008 },
      { geometry: prep(merge(lumps), heightShade(trunkH - 0.8, top, 0.55, 1.12)), color: 1, sway: 0.008, flutter: 0.03 },
    ];
  },
  birch(rand) {
    const trunkH = range(rand, 6.5, 8.5);
    const lean = range(rand, -0.25, 0.25);
    const trunk = new THREE.CylinderGeometry(0.08, 0.17, trunkH, 8, 10);
    trunk.translate(0, trunkH / 2, 0);
    const tp = trunk.attributes.position;
    for (let i = 0; i < tp.count; i++) tp.setX(i, tp.getX(i) + lean * (tp.getY(i) / trunkH) ** 2);
    const bands = Array.from({ length: 12 }, () => (rand() < 0.45 ? range(rand, 0.25, 0.5) : 1));
    const lumps = [];
    for (let i = 0; i < 9; i++) {
      const a = rand() * Math.PI * 2, r = range(rand, 0.2, 1.2);
      const b = blob(range(rand, 0.6, 1.05), 1, rand, 1.25, 0.22);
      b.translate(lean + Math.cos(a) * r, trunkH * range(rand, 0.55, 1.0), Math.sin(a) * r);
      lumps.push(b);
    }
    return [
      { geometry: prep(trunk, (x, y, z) => {
        const k = Math.min(11, Math.floor((y / trunkH) * 12));
        const side = Math.sin(Math.atan2(z, x) * 3 + k) > 0.2 ? bands[k] : 1;
        return y < 0.5 ? 0.55 : side;
      }), color: 0, sway: 0.01 },
      { geometry: prep(merge(lumps), heightShade(trunkH * 0.5, trunkH + 1, 0.6, 1.12)), color: 1, sway: 0.01, flutter: 0.04 },
    ];
  },
  palm(rand) {
    const lean = range(rand, 0.8, 1.7);
    const height = range(rand, 5.6, 7);
    const curve = new THREE.QuadraticBezierCurve3(
      new THREE.Vector3(0, 0, 0), new THREE.Vector3(lean * 0.15, height * 0.5, 0), new THREE.Vector3(lean, height, 0));
    const trunk = new THREE.TubeGeometry(curve, 14, 0.17, 7, false);
    const top = curve.getPoint(1);
    const fronds = [];
    const n = Math.round(range(rand, 8, 11));
    for (let i = 0; i < n; i++) {
      const leaf = strip(range(rand, 3.0, 3.8), range(rand, 0.65, 0.85), 8, range(rand, 1.3, 2.1), 0.9, 0.85);
      leaf.rotateX(range(rand, -0.3, 0.3));
      leaf.rotateY((i / n) * Math.PI * 2 + rand() * 0.4);
      leaf.translate(top.x, top.y, top.z);
      fronds.push(leaf);
    }
    const nuts = [];
    for (let i = 0; i < 3; i++) {
      const nut = new THREE.IcosahedronGeometry(0.13, 0);
      nut.translate(top.x + Math.cos(i * 2.1) * 0.18, top.y - 0.2, top.z + Math.sin(i * 2.1) * 0.18);
      nuts.push(nut);
    }
    return [
      { geometry: prep(merge([trunk, ...nuts]), (x, y) => (0.7 + 0.3 * Math.abs(Math.sin(y * 9))) * (y < 0.3 ? 0.7 : 1)), color: 0, sway: 0.01 },
      { geometry: prep(merge(fronds), (x, y, z) => {
        const d = Math.hypot(x - top.x, z - top.z);
        return 0.6 + Math.min(0.5, d * 0.18);
      }), color: 1, sway: 0.01, flutter: 0.05, doubleSide: true },
    ];
  },
  rock(rand) {
    const g = blob(1, 1, rand, range(rand, 0.45, 0.7), 0.3);
    g.translate(0, 0.15, 0);
    return [{ geometry: prep(g, heightShade(-0.3, 0.7, 0.6, 1.08)), color: 0, sway: 0, receiveShadow: true }];
  },
  bush(rand) {
    const lumps = [];
    const n = Math.round(range(rand, 3, 5));
    for (let i = 0; i < n; i++) {
      const b = blob(range(rand, 0.5, 0.8), 1, rand, 0.75);
      b.translate(range(rand, -0.5, 0.5), range(rand, 0.35, 0.6), range(rand, -0.5, 0.5));
      lumps.push(b);
    }
    return [{ geometry: prep(merge(lumps), heightShade(0, 1.2, 0.5, 1.1)), color: 0, sway: 0.02, flutter: 0.02 }];
  },
  log(rand) {
    const length = range(rand, 2.8, 4.5), r = range(rand, 0.22, 0.36);
    const body = new THREE.CylinderGeometry(r * 0.9, r, length, 9, 4);
    const p = body.attributes.position;
    for (let i = 0; i < p.count; i++) p.setX(i, p.getX(i) * range(rand, 0.94, 1.06));
    body.rotateZ(Math.PI / 2);
    body.translate(0, r * 0.75, 0);
    const stub = new THREE.CylinderGeometry(0.05, 0.09, 0.7, 5);
    stub.rotateZ(0.8);
    stub.translate(length * 0.15, r * 1.3, 0);
    return [{ geometry: prep(merge([body, stub]), (x, y) => (Math.abs(x) > length / 2 - 0.02 ? 1.25 : 0.65 + 0.35 * (y / (2 * r)))), color: 0, sway: 0, receiveShadow: true }];
  },
  plant(rand) {
    const pot = new THREE.LatheGeometry([
      new THREE.Vector2(0.0, 0), new THREE.Vector2(0.17, 0), new THREE.Vector2(0.22, 0.36),
      new THREE.Vector2(0.25, 0.38), new THREE.Vector2(0.25, 0.42), new THREE.Vector2(0.2, 0.42),
      new THREE.Vector2(0.0, 0.4)], 14);
    const style = Math.floor(rand() * 3);
    const leaves = [];
    if (style === 0) { // broad, arching leaves
      for (let i = 0; i < 9; i++) {
        const leaf = strip(range(rand, 0.55, 0.8), range(rand, 0.28, 0.4), 5, 0.25, range(rand, 0.6, 0.9), 0.7);
        leaf.rotateZ(range(rand, 0.5, 1.0));
        leaf.rotateY((i / 9) * Math.PI * 2 + rand() * 0.5);
        leaf.translate(0, 0.42, 0);
        leaves.push(leaf);
      }
    } else if (style === 1) { // upright blades
      for (let i = 0; i < 11; i++) {
        const blade = strip(range(rand, 0.7, 1.15), range(rand, 0.08, 0.12), 4, 0.05, 0, 0.8);
        blade.rotateZ(Math.PI / 2 - range(rand, 0.05, 0.3));
        blade.rotateY(rand() * Math.PI * 2);
        blade.translate(range(rand, -0.08, 0.08), 0.4, range(rand, -0.08, 0.08));
        leaves.push(blade);
      }
    } else { // a leafy mound
      for (let i = 0; i < 5; i++) {
        const b = blob(range(rand, 0.18, 0.26), 1, rand, 0.85);
        b.translate(range(rand, -0.14, 0.14), range(rand, 0.5, 0.75), range(rand, -0.14, 0.14));
        leaves.push(b);
      }
    }
    return [
      { geometry: prep(pot, heightShade(0, 0.42, 0.7, 1.0)), color: 0, sway: 0 },
      { geometry: prep(merge(leaves), heightShade(0.4, 1.3, 0.55, 1.1)), color: 1, sway: 0.01, flutter: 0.012, doubleSide: true },
    ];
  },
  bookshelf(rand, colors) {
    const w = 1.6, h = 2.0, d = 0.36;
    const frame = [];
    const board = (bw, bh, bd, x, y, z) => {
      const g = new THREE.BoxGeometry(bw, bh, bd);
      g.translate(x, y, z);
      frame.push(g);
    };
    board(0.04, h, d, -w / 2, h / 2, 0);
    board(0.04, h, d, w / 2, h / 2, 0);
    board(w, 0.03, d, 0, h - 0.015, 0);
    board(w, 0.02, 0.02, 0, h / 2, -d / 2 + 0.01);
    const back = new THREE.BoxGeometry(w, h, 0.02);
    back.translate(0, h / 2, -d / 2);
    frame.push(back);
    const books = [];
    const palette = colors.slice(1).map((c) => new THREE.Color(c));
    const bookColors = [];
    const shelves = 5;
    for (let s = 0; s < shelves; s++) {
      const y0 = 0.05 + (s * (h - 0.1)) / shelves;
      board(w, 0.03, d, 0, y0, 0);
      let x = -w / 2 + 0.05;
      while (x < w / 2 - 0.1) {
        const bw = range(rand, 0.03, 0.07), bh = range(rand, 0.22, 0.32);
        if (rand() < 0.08) { x += 0.12; continue; }
        const book = new THREE.BoxGeometry(bw, bh, range(rand, 0.2, 0.28));
        book.translate(x + bw / 2, y0 + 0.015 + bh / 2, 0.02);
        books.push(book);
        bookColors.push(palette[Math.floor(rand() * palette.length)] ?? new THREE.Color("#8a6a5a"));
        x += bw + 0.004;
      }
    }
    // each book's own colour, baked into its vertex colours (the part's colour is white)
    let bi = 0;
    const coloured = books.map((b) => {
      const c = bookColors[bi++].clone().multiplyScalar(range(rand, 0.8, 1.1));
      return prep(b, () => [c.r, c.g, c.b]);
    });
    return [
      { geometry: prep(merge(frame), heightShade(0, h, 0.75, 1.0)), color: 0, sway: 0 },
      { geometry: mergeGeometries(coloured), color: -1, sway: 0 },
    ];
  },
  armchair(rand) {
    const parts = [];
    const box = (w, h, d, x, y, z, r = 0.06) => {
      const g = new RoundedBoxGeometry(w, h, d, 2, r);
      g.translate(x, y, z);
      parts.push(g);
    };
    box(0.85, 0.22, 0.8, 0, 0.32, 0.02);       // seat cushion
    box(0.85, 0.2, 0.82, 0, 0.14, 0, 0.04);    // base
    box(0.85, 0.62, 0.2, 0, 0.62, -0.32);      // back
    box(0.16, 0.42, 0.8, -0.5, 0.38, 0);       // arms
    box(0.16, 0.42, 0.8, 0.5, 0.38, 0);
    const legs = [];
    for (const [x, z] of [[-0.45, -0.36], [0.45, -0.36], [-0.45, 0.36], [0.45, 0.36]]) {
      const leg = new THREE.CylinderGeometry(0.025, 0.02, 0.08, 6);
      leg.translate(x, 0.0, z);
      legs.push(leg);
    }
    return [
      { geometry: prep(merge(parts), heightShade(0, 1, 0.7, 1.05)), color: 0, sway: 0 },
      { geometry: prep(merge(legs)), color: 1, sway: 0 },
    ];
  },
};

export const PROP_KINDS = Object.keys(KINDS);

// --- ground cover kinds --------------------------------------------------------------------

const COVER = {
  grass(rand) {
    const blades = [];
    const n = 11;
    for (let i = 0; i < n; i++) {
      const b = strip(range(rand, 0.18, 0.38), 0.028, 3, range(rand, 0.04, 0.12), 0, 0.95);
      b.rotateZ(Math.PI / 2 - range(rand, 0.1, 0.45));
      b.rotateY((i / n) * Math.PI * 2 + rand());
      blades.push(b);
    }
    return [{ geometry: prep(merge(blades), heightShade(0, 0.4, 0.5, 1.15)), color: 0, flutter: 0.02, sway: 0.05, doubleSide: true }];
  },
  fern(rand) {
    const fronds = [];
    const n = 7;
    for (let i = 0; i < n; i++) {
      const f = strip(range(rand, 0.55, 0.8), 0.2, 6, 0.35, 0.45, 0.85);
      f.rotateY((i / n) * Math.PI * 2 + rand() * 0.4);
      fronds.push(f);
    }
    return [{ geometry: prep(merge(fronds), heightShade(0, 0.3, 0.55, 1.1)), color: 0, flutter: 0.02, sway: 0.04, doubleSide: true }];
  },
  flowers(rand) {
    const stems = [], heads = [];
    for (let i = 0; i < 3; i++) {
      const h = range(rand, 0.18, 0.34);
      const x = range(rand, -0.08, 0.08), z = range(rand, -0.08, 0.08);
      const stem = new THREE.CylinderGeometry(0.006, 0.008, h, 3);
      stem.translate(x, h / 2, z);
      stems.push(stem);
      const head = new THREE.IcosahedronGeometry(0.035, 0);
      head.scale(1, 0.55, 1);
      head.translate(x, h, z);
      heads.push(head);
    }
    return [
      { geometry: prep(merge(stems), heightShade(0, 0.3, 0.6, 1)), color: 0, sway: 0.05 },
      { geometry: prep(merge(heads)), color: -2, sway: 0.05 },
    ];
  },
  pebbles(rand) {
    const stones = [];
    for (let i = 0; i < 3; i++) {
      const s = blob(range(rand, 0.04, 0.09), 0, rand, 0.5, 0.25);
      s.translate(range(rand, -0.15, 0.15), 0.01, range(rand, -0.15, 0.15));
      stones.push(s);
    }
    return [{ geometry: prep(merge(stones), heightShade(-0.03, 0.05, 0.7, 1.1)), color: -2, sway: 0 }];
  },
  shells(rand) {
    const shell = new THREE.CircleGeometry(0.05, 7, 0, Math.PI);
    const p = shell.attributes.position;
    for (let i = 0; i < p.count; i++) {
      const r = Math.hypot(p.getX(i), p.getY(i));
      p.setZ(i, 0.02 * (1 - r / 0.05) + 0.004 * Math.sin(Math.atan2(p.getY(i), p.getX(i)) * 14));
    }
    shell.rotateX(-Math.PI / 2);
    shell.translate(0, 0.005, 0);
    return [{ geometry: prep(shell, () => range(rand, 0.9, 1.05)), color: -2, sway: 0, doubleSide: true }];
  },
};

export const GROUND_COVER_KINDS = Object.keys(COVER);

// --- materials -----------------------------------------------------------------------------

/** Sway and flutter in the vertex shader: instanced plants bend a little from the ground up. */
export function swayMaterial(params, uniforms, sway, flutter = 0) {
  const material = new THREE.MeshLambertMaterial(params);
  material.onBeforeCompile = (shader) => {
    shader.uniforms.uTime = uniforms.time;
    shader.uniforms.uSway = { value: sway };
    shader.uniforms.uFlutter = { value: flutter };
    shader.vertexShader = "uniform float uTime;\nuniform float uSway;\nuniform float uFlutter;\n" +
      shader.vertexShader.replace("#include <begin_vertex>", `#include <begin_vertex>
        #ifdef USE_INSTANCING
          float hvPhase = instanceMatrix[3][0] * 0.37 + instanceMatrix[3][2] * 0.23;
        #else
          float hvPhase = 0.0;
        #endif
        float hvBend = max(position.y, 0.0) * uSway;
        transformed.x += sin(uTime * 0.8 + hvPhase) * hvBend;
        transformed.z += cos(uTime * 0.63 + hvPhase * 1.3) * hvBend * 0.6;
        transformed += normal * sin(uTime * 2.1 + position.x * 2.7 + position.z * 1.9 + hvPhase)
          * uFlutter;`);
  };
  material.customProgramCacheKey = () => "haven-sway";
  return material;
}

function partMaterial(part, colorHex, uniforms, swayScale) {
  const params = {
    color: colorHex, vertexColors: true,
    side: part.doubleSide ? THREE.DoubleSide : THREE.FrontSide,
  };
  const sway = (part.sway ?? 0) * swayScale;
  return sway || (part.flutter && swayScale)
    ? swayMaterial(params, uniforms, sway, (part.flutter ?? 0) * swayScale)
    : new THREE.MeshLambertMaterial(params);
}

// --- placement -----------------------------------------------------------------------------

function insideRoom(def, x, z, margin) {
  const room = def.interior;
  if (!room) return false;
  const [cx, cz] = def.seating.center ?? [0, 0];
  return Math.abs(x - cx) < room.width / 2 + margin && Math.abs(z - cz) < room.depth / 2 + margin;
}

/** Deterministic placement of every prop group: [{x, z, scale, rotation, tint, variant}]. */
export function placeProps(def) {
  const [cx, cz] = def.seating.center ?? [0, 0];
  const water = def.water;
  const everything = [];
  return def.props.map((group, gi) => {
    const rand = mulberry32(mixSeed(def.seed, gi + 1));
    const variants = group.variants ?? (group.at ? 1 : 3);
    if (group.at) {
      const placed = group.at.map(([x, z, yaw = 0]) => ({
        x, z, scale: range(rand, group.scale?.[0] ?? 1, group.scale?.[1] ?? 1), rotation: yaw * DEG,
        tint: rand(), variant: Math.floor(rand() * variants), stretch: 1, lean: 0,
      }));
      everything.push(...placed);
      return placed;
    }
    const [a0, a1] = group.arc_deg.map((a) => a * DEG);
    const spacing = group.min_spacing ?? 1;
    const r0 = group.min_radius ** 2, r1 = group.max_radius ** 2;
    const placed = [];
    for (let t = 0; t < group.count * 40 && placed.length < group.count; t++) {
      const theta = range(rand, a0, a1);
      const r = Math.sqrt(range(rand, r0, r1));
      const scale = range(rand, group.scale[0], group.scale[1]);
      const rotation = rand() * Math.PI * 2;
      const tint = rand();
      const variant = Math.floor(rand() * variants);
      const stretch = range(rand, 0.88, 1.14);
      const lean = range(rand, -1, 1);
      const x = cx + r * Math.sin(theta), z = cz + r * Math.cos(theta);
      if (water && !group.in_water && z < water.shore_z + 2) continue;
      if (water && group.in_water && z < water.shore_z - 5) continue;
      if (insideRoom(def, x, z, 1.0)) continue;
      if (placed.some((p) => (p.x - x) ** 2 + (p.z - z) ** 2 < spacing ** 2)) continue;
      if (everything.some((p) => (p.x - x) ** 2 + (p.z - z) ** 2 < 1.2 ** 2)) continue;
      placed.push({ x, z, scale, rotation, tint, variant, stretch, lean });
    }
    everything.push(...placed);
    return placed;
  });
}

const TREES = new Set(["pine", "broadleaf", "birch", "palm"]);

/** Per-instance tint: brightness and a slight hue drift, so no two trees match. */
function instanceTint(out, tint, spread) {
  const warm = (tint - 0.5) * spread;
  return out.setRGB(0.86 + tint * 0.28 + warm * 0.4, 0.86 + tint * 0.28, 0.86 + tint * 0.28 - warm * 0.6);
}

/** One InstancedMesh per part of each variant of each prop group. */
export function buildProps(def, heightAt, uniforms, motionScale) {
  const placements = placeProps(def);
  const meshes = [];
  const matrix = new THREE.Matrix4();
  const q = new THREE.Quaternion();
  const tilt = new THREE.Quaternion();
  const s = new THREE.Vector3();
  const p = new THREE.Vector3();
  const up = new THREE.Vector3(0, 1, 0);
  const side = new THREE.Vector3();
  const tint = new THREE.Color();
  def.props.forEach((group, gi) => {
    const placed = placements[gi];
    if (!placed.length || !KINDS[group.kind]) return;
    const variants = group.variants ?? (group.at ? 1 : 3);
    for (let v = 0; v < variants; v++) {
      const mine = placed.filter((it) => it.variant === v);
      if (!mine.length) continue;
      const rand = mulberry32(mixSeed(def.seed, 1000 + gi, v));
      const parts = KINDS[group.kind](rand, group.colors);
      for (const part of parts) {
        const colorHex = part.color < 0 ? "#ffffff" : group.colors[Math.min(part.color, group.colors.length - 1)];
        const material = partMaterial(part, colorHex, uniforms, (group.sway ?? 0) * motionScale);
        const mesh = new THREE.InstancedMesh(part.geometry, material, mine.length);
        mine.forEach((it, i) => {
          const sink = group.kind === "rock" ? 0.25 * it.scale : group.at ? 0 : 0.05;
          p.set(it.x, heightAt(it.x, it.z) - sink, it.z);
          q.setFromAxisAngle(up, it.rotation);
          if (TREES.has(group.kind)) {
            side.set(Math.cos(it.rotation), 0, -Math.sin(it.rotation));
            tilt.setFromAxisAngle(side, it.lean * 0.045);
            q.premultiply(tilt);
          }
          if (group.kind === "rock") s.set(it.scale * (0.8 + it.tint * 0.6), it.scale, it.scale);
          else s.set(it.scale / Math.sqrt(it.stretch), it.scale * it.stretch, it.scale / Math.sqrt(it.stretch));
          matrix.compose(p, q, s);
          mesh.setMatrixAt(i, matrix);
          mesh.setColorAt(i, instanceTint(tint, it.tint, TREES.has(group.kind) ? 0.25 : 0.1));
        });
        mesh.castShadow = true;
        mesh.receiveShadow = !!part.receiveShadow || !!group.at;
        mesh.name = `props:${group.kind}`;
        mesh.userData.fullCount = mine.length;
        mesh.userData.reflect = true;
        mesh.computeBoundingSphere();
        meshes.push(mesh);
      }
    }
  });
  return { meshes, placements };
}

/** Ground cover: scattered evenly in each group's annulus, never in the sea or the room. */
export function placeGroundCover(def, group, gi) {
  const rand = mulberry32(mixSeed(def.seed, 5000 + gi));
  const [cx, cz] = def.seating.center ?? [0, 0];
  const water = def.water;
  const r0 = group.min_radius ** 2, r1 = group.max_radius ** 2;
  const n = Math.round(group.density * Math.PI * (r1 - r0));
  const beachy = group.kind === "shells" || group.kind === "pebbles";
  const out = [];
  for (let i = 0; i < n; i++) {
    const theta = rand() * Math.PI * 2, r = Math.sqrt(range(rand, r0, r1));
    const x = cx + r * Math.sin(theta), z = cz + r * Math.cos(theta);
    const scale = range(rand, group.scale?.[0] ?? 0.7, group.scale?.[1] ?? 1.3);
    const rotation = rand() * Math.PI * 2, tint = rand(), pick = rand();
    if (water && z < water.shore_z + (beachy ? 0.6 : 2.5)) continue;
    if (insideRoom(def, x, z, 0.3)) continue;
    out.push({ x, z, scale, rotation, tint, pick });
  }
  return out;
}

export function buildGroundCover(def, heightAt, uniforms, motionScale) {
  const meshes = [];
  const matrix = new THREE.Matrix4();
  const q = new THREE.Quaternion();
  const s = new THREE.Vector3();
  const p = new THREE.Vector3();
  const up = new THREE.Vector3(0, 1, 0);
  const c = new THREE.Color();
  (def.ground_cover ?? []).forEach((group, gi) => {
    const placed = placeGroundCover(def, group, gi);
    if (!placed.length || !COVER[group.kind]) return;
    const rand = mulberry32(mixSeed(def.seed, 6000 + gi));
    for (const part of COVER[group.kind](rand)) {
      const colorHex = part.color < 0 ? "#ffffff" : group.colors[0];
      const material = partMaterial(part, colorHex, uniforms, motionScale);
      const mesh = new THREE.InstancedMesh(part.geometry, material, placed.length);
      const accents = group.colors.length > 1 && part.color === -2 ? group.colors.slice(1) : group.colors;
      placed.forEach((it, i) => {
        p.set(it.x, heightAt(it.x, it.z) - 0.02, it.z);
        q.setFromAxisAngle(up, it.rotation);
        s.setScalar(it.scale);
        matrix.compose(p, q, s);
        mesh.setMatrixAt(i, matrix);
        if (part.color === -2) c.set(accents[Math.floor(it.pick * accents.length)]).multiplyScalar(0.85 + it.tint * 0.3);
        else instanceTint(c, it.tint, 0.3);
        mesh.setColorAt(i, c);
      });
      mesh.castShadow = false;
      mesh.receiveShadow = true;
      mesh.name = `ground-cover:${group.kind}`;
      mesh.userData.fullCount = placed.length;
      mesh.userData.lowPowerFraction = 0.35;
      mesh.computeBoundingSphere();
      meshes.push(mesh);
    }
  });
  return meshes;
}
