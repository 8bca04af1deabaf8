// Builders that turn an environment definition (data) into three.js objects. Every prop kind
// is one or two InstancedMeshes, so a whole scene stays well under 100 draw calls.

import * as THREE from "three";
import { mergeGeometries } from "three/addons/utils/BufferGeometryUtils.js";
import { mixSeed, mulberry32, range, valueNoise2D } from "./random.js";

export const WATER_Y = -0.3;
const DEG = Math.PI / 180;

const smoothstep = (a, b, x) => {
  const t = Math.min(1, Math.max(0, (x - a) / (b - a)));
  return t * t * (3 - 2 * t);
};

/** The sun's direction (unit vector towards the sun); azimuth 0 is +z, 180 is -z. */
export function sunDirection(light) {
  const el = light.sun_elevation_deg * DEG;
  const az = light.sun_azimuth_deg * DEG;
  return new THREE.Vector3(Math.sin(az) * Math.cos(el), Math.sin(el), Math.cos(az) * Math.cos(el))
    .normalize();
}

/** Ground height at (x, z): flat in the circle, gentle relief around, a beach slopes to the sea. */
export function makeHeightField(def) {
  const noise = valueNoise2D(mixSeed(def.seed, 101));
  const [cx, cz] = def.seating.center ?? [0, 0];
  const relief = def.terrain.relief;
  const water = def.water;
  const slope = water ? -WATER_Y / Math.max(1, cz - water.shore_z) : 0;
  return function heightAt(x, z) {
    const d = Math.hypot(x - cx, z - cz);
    const flat = smoothstep(5, 14, d);
    let h = relief * (noise(x / 16, z / 16) * 0.7 + noise(x / 5 + 50, z / 5 + 50) * 0.3) * flat;
    h += relief * 3 * smoothstep(45, 130, d) * (noise(x / 40 + 9, z / 40 + 9) + 1) * 0.5;
    if (water) h += Math.min(3, WATER_Y + (z - water.shore_z) * slope);
    return h;
  };
}

/** Deterministic placement of every prop group: [{x, z, scale, rotation, tint}] per group. */
export function placeProps(def) {
  const [cx, cz] = def.seating.center ?? [0, 0];
  const water = def.water;
  const everything = [];
  return def.props.map((group, gi) => {
    const rand = mulberry32(mixSeed(def.seed, gi + 1));
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
      const x = cx + r * Math.sin(theta), z = cz + r * Math.cos(theta);
      if (water && !group.in_water && z < water.shore_z + 2) continue;
      if (water && group.in_water && z < water.shore_z - 5) continue;
      if (placed.some((p) => (p.x - x) ** 2 + (p.z - z) ** 2 < spacing ** 2)) continue;
      if (everything.some((p) => (p.x - x) ** 2 + (p.z - z) ** 2 < 1.2 ** 2)) continue;
      placed.push({ x, z, scale, rotation, tint });
    }
    everything.push(...placed);
    return placed;
  });
}

// --- materials -----------------------------------------------------------------------------

/** Sway and flutter in the vertex shader: instanced trees bend a little from the ground up. */
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

/** Slowly drifting dapples of light on the ground (forest), with no extra draw call. */
function dappleMaterial(params, uniforms, strength) {
  const material = new THREE.MeshLambertMaterial(params);
  material.onBeforeCompile = (shader) => {
    shader.uniforms.uTime = uniforms.time;
    shader.uniforms.uDapple = { value: strength };
    shader.vertexShader = "varying vec2 vGroundXZ;\n" + shader.vertexShader.replace(
      "#include <begin_vertex>", "#include <begin_vertex>\nvGroundXZ = (modelMatrix * vec4(position, 1.0)).xz;");
    shader.fragmentShader = "uniform float uTime;\nuniform float uDapple;\nvarying vec2 vGroundXZ;\n" +
      shader.fragmentShader.replace("#include <color_fragment>", `#include <color_fragment>
        vec2 q = vGroundXZ + vec2(uTime * 0.05, uTime * 0.03);
        float dp = sin(q.x * 1.3) * sin(q.y * 1.1) + sin((q.x + q.y) * 0.61 + uTime * 0.07)
                 + 0.5 * sin(q.x * 2.9 - q.y * 2.3);
        float spots = smoothstep(0.9, 1.6, dp);
        float fade = 1.0 - smoothstep(18.0, 40.0, length(vGroundXZ));
        diffuseColor.rgb *= 0.9 + uDapple * 0.9 * spots * fade;`);
  };
  material.customProgramCacheKey = () => "haven-dapple";
  return material;
}

// --- sky, terrain, water -------------------------------------------------------------------

export function buildSky(def, sunDir) {
  const geometry = new THREE.SphereGeometry(450, 32, 16);
  const material = new THREE.ShaderMaterial({
    uniforms: {
      zenith: { value: new THREE.Color(def.sky.zenith) },
      horizon: { value: new THREE.Color(def.sky.horizon) },
      ground: { value: new THREE.Color(def.sky.ground) },
      sunColor: { value: new THREE.Color(def.light.sun_color) },
      sunDir: { value: sunDir.clone() },
    },
    vertexShader: `varying vec3 vDir;
      void main() {
        vDir = position;
        gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0);
      }`,
    fragmentShader: `uniform vec3 zenith; uniform vec3 horizon; uniform vec3 ground;
      uniform vec3 sunColor; uniform vec3 sunDir; varying vec3 vDir;
      void main() {
        vec3 d = normalize(vDir);
        vec3 col = d.y > 0.0 ? mix(horizon, zenith, pow(d.y, 0.5))
                             : mix(horizon, ground, pow(min(-d.y * 4.0, 1.0), 0.6));
        float s = max(dot(d, normalize(sunDir)), 0.0);
        col += sunColor * (pow(s, 900.0) * 3.0 + pow(s, 10.0) * 0.22);
        gl_FragColor = vec4(col, 1.0);
        #include <colorspace_fragment>
      }`,
    side: THREE.BackSide,
    depthWrite: false,
    fog: false,
    toneMapped: false,
  });
  const sky = new THREE.Mesh(geometry, material);
  sky.name = "sky";
  sky.renderOrder = -1;
  sky.frustumCulled = false;
  return sky;
}

export function buildTerrain(def, heightAt, uniforms, lowPower) {
  const t = def.terrain;
  const seg = lowPower ? 64 : 100;
  const geometry = new THREE.PlaneGeometry(t.size, t.size, seg, seg);
  geometry.rotateX(-Math.PI / 2);
  const pos = geometry.attributes.position;
  const colors = new Float32Array(pos.count * 3);
  const base = new THREE.Color(t.color);
  const noise = valueNoise2D(mixSeed(def.seed, 202));
  const c = new THREE.Color();
  const wet = new THREE.Color(t.color).multiplyScalar(0.72);
  const [cx, cz] = def.seating.center ?? [0, 0];
  for (let i = 0; i < pos.count; i++) {
    const x = pos.getX(i), z = pos.getZ(i);
    const y = heightAt(x, z);
    pos.setY(i, y);
    const v = noise(x / 7, z / 7) * t.color_variation + noise(x / 1.7, z / 1.7) * t.color_variation * 0.4;
    c.copy(base).multiplyScalar(1 + v);
    if (def.water) c.lerp(wet, smoothstep(WATER_Y + 0.5, WATER_Y, y));
    if (t.kind === "meadow") {
      const d = Math.hypot(x - cx, z - cz);
      c.offsetHSL(0.02 * smoothstep(3, 10, d), 0, 0.03 * (1 - smoothstep(2, 9, d)));
    }
    colors.set([c.r, c.g, c.b], i * 3);
  }
  geometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  geometry.computeVertexNormals();
  const params = { vertexColors: true };
  const material = def.atmosphere.dapple > 0
    ? dappleMaterial(params, uniforms, def.atmosphere.dapple)
    : new THREE.MeshLambertMaterial(params);
  const mesh = new THREE.Mesh(geometry, material);
  mesh.name = "terrain";
  mesh.receiveShadow = true;
  return mesh;
}

export function buildWater(def, heightAt, uniforms, lowPower) {
  const w = def.water;
  // A grid that is dense by the shore (where the foam is) and coarse far out at sea.
  const cols = lowPower ? 60 : 110;
  const rows = lowPower ? 40 : 70;
  const zNear = w.shore_z + 4;
  const zFar = -420;
  const width = 840;
  const positions = [], depths = [], colors = [], index = [];
  const shallow = new THREE.Color(w.color), deep = new THREE.Color(w.deep_color), c = new THREE.Color();
  for (let r = 0; r <= rows; r++) {
    const f = (r / rows) ** 2.2;
    const z = zNear + (zFar - zNear) * f;
    for (let k = 0; k <= cols; k++) {
      const x = -width / 2 + (width * k) / cols;
      const depth = Math.max(0, WATER_Y - heightAt(x, z));
      positions.push(x, WATER_Y, z);
      depths.push(depth);
      c.copy(shallow).lerp(deep, smoothstep(0.2, 3.5, depth));
      colors.push(c.r, c.g, c.b);
    }
  }
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < cols; k++) {
      const a = r * (cols + 1) + k, b = a + 1, d = a + cols + 1, e = d + 1;
      index.push(a, b, d, b, e, d);
    }
  }
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.Float32BufferAttribute(positions, 3));
  geometry.setAttribute("normal", new THREE.Float32BufferAttribute(
    new Float32Array(positions.length).map((_, i) => (i % 3 === 1 ? 1 : 0)), 3));
  geometry.setAttribute("color", new THREE.Float32BufferAttribute(colors, 3));
  geometry.setAttribute("aDepth", new THREE.Float32BufferAttribute(depths, 1));
  geometry.setIndex(index);
  const material = new THREE.MeshPhongMaterial({
    vertexColors: true, shininess: 90, specular: new THREE.Color(0x8a8a80),
  });
  material.onBeforeCompile = (shader) => {
    shader.uniforms.uTime = uniforms.time;
    shader.uniforms.uAmp = { value: w.wave_height };
    shader.uniforms.uSpeed = { value: w.wave_speed };
    shader.uniforms.uFoam = { value: new THREE.Color(w.foam_color) };
    shader.vertexShader = `uniform float uTime; uniform float uAmp; uniform float uSpeed;
      attribute float aDepth; varying float vDepth;
      const vec2 WDIR[4] = vec2[4](vec2(0.0, 1.0), vec2(0.34, 0.94), vec2(-0.45, 0.89), vec2(0.8, 0.6));
      const float WLEN[4] = float[4](13.0, 8.0, 5.0, 2.7);
      const float WAMP[4] = float[4](0.5, 0.28, 0.14, 0.08);
      vec3 havenWave(vec2 p, float t) {
        vec3 r = vec3(0.0);
        for (int i = 0; i < 4; i++) {
          float k = 6.2831853 / WLEN[i];
          float w = sqrt(9.8 * k) * uSpeed;
          float ph = k * dot(WDIR[i], p) - w * t;
          float a = uAmp * WAMP[i];
          r.x += a * sin(ph);
          r.y += a * k * WDIR[i].x * cos(ph);
          r.z += a * k * WDIR[i].y * cos(ph);
        }
        return r;
      }
      ` + shader.vertexShader
      .replace("#include <beginnormal_vertex>", `
        float hvDamp = clamp(aDepth / 1.2, 0.2, 1.0);
        vec3 hvWave = havenWave(position.xz, uTime) * hvDamp;
        vec3 objectNormal = normalize(vec3(-hvWave.y, 1.0, -hvWave.z));`)
      .replace("#include <begin_vertex>", `vec3 transformed = vec3(position);
        transformed.y += hvWave.x;
        vDepth = aDepth;`);
    shader.fragmentShader = "uniform float uTime; uniform vec3 uFoam; varying float vDepth;\n" +
      shader.fragmentShader.replace("#include <color_fragment>", `#include <color_fragment>
        float swash = 0.5 + 0.5 * sin(uTime * 0.7);
        float edge = smoothstep(0.16 + 0.12 * swash, 0.0, vDepth);
        float lace = 0.5 + 0.5 * sin(vDepth * 40.0 - uTime * 1.3);
        float foam = max(edge, smoothstep(0.5, 0.05, vDepth) * lace * 0.45);
        diffuseColor.rgb = mix(diffuseColor.rgb, uFoam, clamp(foam, 0.0, 0.9));`);
  };
  material.customProgramCacheKey = () => "haven-water";
  const mesh = new THREE.Mesh(geometry, material);
  mesh.name = "water";
  mesh.frustumCulled = false;
  return mesh;
}

// --- props ---------------------------------------------------------------------------------

function prep(geometry) {
  const g = geometry.index ? geometry.toNonIndexed() : geometry;
  g.deleteAttribute("uv");
  g.computeVertexNormals();
  return g;
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

/** Each kind: a list of parts ({geometry, color: index into the group's colours, sway}). */
const KINDS = {
  pine(rand) {
    const trunk = new THREE.CylinderGeometry(0.16, 0.3, 4, 7);
    trunk.translate(0, 2, 0);
    const tiers = [[2.6, 4.2, 3.2], [2.0, 3.6, 5.4], [1.35, 3.0, 7.4], [0.7, 2.2, 9.0]];
    const canopy = tiers.map(([r, h, y]) => {
      const cone = new THREE.ConeGeometry(r * range(rand, 0.92, 1.08), h, 9);
      cone.translate(0, y, 0);
      return prep(cone);
    });
    return [
      { geometry: prep(trunk), color: 0, sway: 0.006 },
      { geometry: mergeGeometries(canopy), color: 1, sway: 0.006, flutter: 0.015 },
    ];
  },
  broadleaf(rand) {
    const trunk = new THREE.CylinderGeometry(0.18, 0.32, 4.2, 7);
    trunk.translate(0, 2.1, 0);
    const lumps = [];
    for (let i = 0; i < 5; i++) {
      const a = (i / 5) * Math.PI * 2 + rand();
      const r = i === 0 ? 0 : range(rand, 1.0, 1.6);
      const b = blob(range(rand, 1.4, 2.0), 1, rand, 0.8);
      b.translate(Math.cos(a) * r, range(rand, 4.6, 6.0) + (i === 0 ? 0.8 : 0), Math.sin(a) * r);
      lumps.push(prep(b));
    }
    return [
      { geometry: prep(trunk), color: 0, sway: 0.008 },
      { geometry: mergeGeometries(lumps), color: 1, sway: 0.008, flutter: 0.03 },
    ];
  },
  palm(rand) {
    const lean = range(rand, 0.8, 1.6);
    const curve = new THREE.QuadraticBezierCurve3(
      new THREE.Vector3(0, 0, 0), new THREE.Vector3(lean * 0.2, 3.2, 0), new THREE.Vector3(lean, 6.2, 0));
    const trunk = new THREE.TubeGeometry(curve, 10, 0.17, 6, false);
    const top = curve.getPoint(1);
    const fronds = [];
    const n = 8;
    for (let i = 0; i < n; i++) {
      const leaf = new THREE.PlaneGeometry(3.4, 0.7, 6, 1);
      const p = leaf.attributes.position;
      for (let k = 0; k < p.count; k++) {
        const x = p.getX(k) + 1.7; // 0 .. 3.4 from the crown outwards
        const taper = 1 - (x / 3.4) * 0.8;
        p.setXYZ(k, x, -0.16 * x * x + 0.25 * x, p.getY(k) * taper);
      }
      leaf.rotateY((i / n) * Math.PI * 2 + rand() * 0.3);
      leaf.translate(top.x, top.y, top.z);
      fronds.push(prep(leaf));
    }
    return [
      { geometry: prep(trunk), color: 0, sway: 0.01 },
      { geometry: mergeGeometries(fronds), color: 1, sway: 0.01, flutter: 0.05, doubleSide: true },
    ];
  },
  rock(rand) {
    const g = blob(1, 1, rand, 0.55, 0.28);
    g.translate(0, 0.15, 0);
    return [{ geometry: prep(g), color: 0, sway: 0 }];
  },
  bush(rand) {
    const lumps = [];
    for (let i = 0; i < 3; i++) {
      const b = blob(range(rand, 0.55, 0.8), 1, rand, 0.75);
      b.translate(range(rand, -0.45, 0.45), 0.45, range(rand, -0.45, 0.45));
      lumps.push(prep(b));
    }
    return [{ geometry: mergeGeometries(lumps), color: 0, sway: 0.02, flutter: 0.02 }];
  },
};

export const PROP_KINDS = Object.keys(KINDS);

/** One InstancedMesh per part of each prop group. Returns {meshes, counts}. */
export function buildProps(def, heightAt, uniforms, motionScale) {
  const placements = placeProps(def);
  const meshes = [];
  const matrix = new THREE.Matrix4();
  const q = new THREE.Quaternion();
  const s = new THREE.Vector3();
  const p = new THREE.Vector3();
  const up = new THREE.Vector3(0, 1, 0);
  const tint = new THREE.Color();
  def.props.forEach((group, gi) => {
    const placed = placements[gi];
    if (!placed.length || !KINDS[group.kind]) return;
    const rand = mulberry32(mixSeed(def.seed, 1000 + gi));
    const parts = KINDS[group.kind](rand);
    const sway = (group.sway ?? 0) * motionScale;
    for (const part of parts) {
      const color = group.colors[Math.min(part.color, group.colors.length - 1)];
      const params = { color, flatShading: true, side: part.doubleSide ? THREE.DoubleSide : THREE.FrontSide };
      const material = part.sway && sway
        ? swayMaterial(params, uniforms, part.sway * sway, (part.flutter ?? 0) * sway)
        : new THREE.MeshLambertMaterial(params);
      const mesh = new THREE.InstancedMesh(part.geometry, material, placed.length);
      placed.forEach((it, i) => {
        const sink = group.kind === "rock" ? 0.25 * it.scale : 0.05;
        p.set(it.x, heightAt(it.x, it.z) - sink, it.z);
        q.setFromAxisAngle(up, it.rotation);
        if (group.kind === "rock") s.set(it.scale * (0.8 + it.tint * 0.6), it.scale, it.scale);
        else s.setScalar(it.scale);
        matrix.compose(p, q, s);
        mesh.setMatrixAt(i, matrix);
        mesh.setColorAt(i, tint.setScalar(0.86 + it.tint * 0.28));
      });
      mesh.castShadow = true;
      mesh.receiveShadow = group.kind === "rock";
      mesh.name = `props:${group.kind}`;
      mesh.userData.fullCount = placed.length;
      mesh.computeBoundingSphere();
      meshes.push(mesh);
    }
  });
  return { meshes, placements };
}

// --- atmosphere ----------------------------------------------------------------------------

/** A white radial glow fading to clear: `stops` are [offset, alpha] pairs. */
export function radialTexture(stops = [[0, 1], [0.45, 0.55], [1, 0]], size = 64) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  const g = ctx.createRadialGradient(size / 2, size / 2, 0, size / 2, size / 2, size / 2);
  for (const [offset, alpha] of stops) g.addColorStop(offset, `rgba(255,255,255,${alpha})`);
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, size, size);
  const texture = new THREE.CanvasTexture(canvas);
  texture.colorSpace = THREE.SRGBColorSpace;
  return texture;
}

export function buildClouds(def) {
  const n = def.atmosphere.clouds;
  if (!n) return null;
  const rand = mulberry32(mixSeed(def.seed, 303));
  const quads = [];
  const dummy = new THREE.Object3D();
  for (let i = 0; i < n * 3; i++) {
    const cloud = Math.floor(i / 3);
    const theta = ((cloud + rand() * 0.6) / n) * Math.PI * 2;
    const r = range(rand, 300, 380);
    const quad = new THREE.PlaneGeometry(range(rand, 60, 120), range(rand, 14, 26));
    dummy.position.set(Math.sin(theta) * r + range(rand, -25, 25), range(rand, 45, 110),
      Math.cos(theta) * r);
    dummy.lookAt(0, dummy.position.y * 0.6, 0);
    dummy.updateMatrix();
    quad.applyMatrix4(dummy.matrix);
    quads.push(quad);
  }
  const material = new THREE.MeshBasicMaterial({
    map: radialTexture(), transparent: true, depthWrite: false, fog: false, opacity: 0.7,
    color: new THREE.Color(def.sky.horizon).lerp(new THREE.Color("#ffffff"), 0.7),
  });
  const mesh = new THREE.Mesh(mergeGeometries(quads), material);
  mesh.name = "clouds";
  mesh.frustumCulled = false;
  return mesh;
}

export function buildShafts(def, sunDir) {
  const n = def.atmosphere.light_shafts;
  if (!n) return null;
  const rand = mulberry32(mixSeed(def.seed, 404));
  const parts = [];
  const axis = new THREE.Vector3(0, 1, 0);
  const q = new THREE.Quaternion().setFromUnitVectors(axis, sunDir.clone().normalize());
  const sun = new THREE.Color(def.light.sun_color);
  for (let i = 0; i < n; i++) {
    const length = 30;
    const g = new THREE.CylinderGeometry(range(rand, 0.9, 1.5), range(rand, 0.5, 0.9), length, 10, 6, true);
    const colors = [];
    const p = g.attributes.position;
    for (let k = 0; k < p.count; k++) {
      const f = (p.getY(k) + length / 2) / length; // 0 at ground, 1 at the canopy
      const a = Math.sin(Math.PI * Math.min(1, f * 1.25)) ** 2 * 0.22;
      colors.push(sun.r * a, sun.g * a, sun.b * a);
    }
    g.setAttribute("color", new THREE.Float32BufferAttribute(colors, 3));
    g.translate(0, length / 2, 0);
    g.applyQuaternion(q);
    // only on the sun's side of the circle, so no shaft leans over the seats
    const sunAz = Math.atan2(sunDir.x, sunDir.z);
    const theta = sunAz + range(rand, -1.1, 1.1), r = range(rand, 9, 22);
    g.translate(Math.sin(theta) * r, -0.5, Math.cos(theta) * r);
    g.deleteAttribute("uv");
    parts.push(g);
  }
  const material = new THREE.MeshBasicMaterial({
    vertexColors: true, transparent: true, opacity: 0.35, blending: THREE.AdditiveBlending,
    depthWrite: false, side: THREE.DoubleSide, fog: false,
  });
  const mesh = new THREE.Mesh(mergeGeometries(parts), material);
  mesh.name = "light-shafts";
  return mesh;
}

export function buildMotes(def) {
  const n = def.atmosphere.motes;
  if (!n) return null;
  const rand = mulberry32(mixSeed(def.seed, 505));
  const positions = [];
  for (let i = 0; i < n; i++) {
    positions.push(range(rand, -14, 14), range(rand, 0.4, 5), range(rand, -14, 14));
  }
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.Float32BufferAttribute(positions, 3));
  const material = new THREE.PointsMaterial({
    size: 0.06, color: new THREE.Color(def.light.sun_color), transparent: true, opacity: 0.7,
    depthWrite: false,
  });
  const points = new THREE.Points(geometry, material);
  points.name = "motes";
  return points;
}
