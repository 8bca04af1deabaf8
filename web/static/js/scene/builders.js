// Builders that turn an environment definition (data) into three.js objects: the ground,
// and the atmosphere (clouds for a gradient sky, light shafts, motes). The sky (sky.js), the
// sea (water.js), props and ground cover (props.js) and rooms (interior.js) have their own
// modules; this one re-exports them so the scene has one place to import builders from.

import * as THREE from "three";
import { mergeGeometries } from "three/addons/utils/BufferGeometryUtils.js";
import { mixSeed, mulberry32, range, valueNoise2D } from "./random.js";
import { groundTextures, radialTexture, sandTextures } from "./textures.js";
import { WATER_Y } from "./water.js";

export { WATER_Y, buildWater } from "./water.js";
export { buildSky, bakeSky } from "./sky.js";
export { buildGroundCover, buildProps, placeGroundCover, placeProps, PROP_KINDS, swayMaterial } from "./props.js";
export { buildInterior } from "./interior.js";
export { radialTexture } from "./textures.js";
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

/** Ground height at (x, z): flat in the circle (and under a room), gentle relief around, a
 * beach slopes down to the sea. */
export function makeHeightField(def) {
  const noise = valueNoise2D(mixSeed(def.seed, 101));
  const [cx, cz] = def.seating.center ?? [0, 0];
  const relief = def.terrain.relief;
  const water = def.water;
  const room = def.interior;
  const slope = water ? -WATER_Y / Math.max(1, cz - water.shore_z) : 0;
  const flatFrom = room ? Math.hypot(room.width, room.depth) / 2 + 1 : 5;
  return function heightAt(x, z) {
    const d = Math.hypot(x - cx, z - cz);
    const flat = smoothstep(flatFrom, flatFrom + 9, d);
    let h = relief * (noise(x / 16, z / 16) * 0.7 + noise(x / 5 + 50, z / 5 + 50) * 0.3) * flat;
    h += relief * 3 * smoothstep(45, 130, d) * (noise(x / 40 + 9, z / 40 + 9) + 1) * 0.5;
    if (water) h += Math.min(3, WATER_Y + (z - water.shore_z) * slope);
    if (room) {
      // the room's floor stands a step above the garden around it
      const out = Math.max(Math.abs(x - cx) - room.width / 2, Math.abs(z - cz) - room.depth / 2);
      h -= 0.35 * smoothstep(-0.2, 1.5, out);
      if (out < 0.4) h = Math.min(h, -0.08); // never through the floorboards
    }
    return h;
  };
}

// --- materials -----------------------------------------------------------------------------

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

export function buildTerrain(def, heightAt, uniforms, lowPower) {
  const t = def.terrain;
  const seg = lowPower ? 72 : 128;
  const half = t.size / 2;
  const geometry = new THREE.PlaneGeometry(t.size, t.size, seg, seg);
  geometry.rotateX(-Math.PI / 2);
  const pos = geometry.attributes.position;
  const uv = geometry.attributes.uv;
  const colors = new Float32Array(pos.count * 3);
  const base = new THREE.Color(t.color);
  const noise = valueNoise2D(mixSeed(def.seed, 202));
  const c = new THREE.Color();
  const wet = new THREE.Color(t.color).multiplyScalar(0.7);
  const [cx, cz] = def.seating.center ?? [0, 0];
  const tile = t.kind === "sand" ? 3.5 : 2.5; // metres per repeat of the detail texture
  // vertices are packed towards the circle (where people look) and sparse far away
  const warp = (v) => Math.sign(v) * half * Math.abs(v / half) ** 1.7;
  for (let i = 0; i < pos.count; i++) {
    const x = cx + warp(pos.getX(i)), z = cz + warp(pos.getZ(i));
    const y = heightAt(x, z);
    pos.setXYZ(i, x, y, z);
    uv.setXY(i, x / tile, z / tile);
    const v = noise(x / 7, z / 7) * t.color_variation + noise(x / 1.7, z / 1.7) * t.color_variation * 0.4;
    c.copy(base).multiplyScalar(1 + v);
    if (def.water) {
      c.lerp(wet, smoothstep(WATER_Y + 0.45, WATER_Y + 0.05, y));
      c.multiplyScalar(1 + 0.05 * smoothstep(WATER_Y + 0.6, WATER_Y + 1.4, y)); // dry, pale sand
    }
    if (t.kind === "meadow") {
      const d = Math.hypot(x - cx, z - cz);
      c.offsetHSL(0.02 * smoothstep(3, 10, d), 0, 0.03 * (1 - smoothstep(2, 9, d)));
    }
    colors.set([c.r, c.g, c.b], i * 3);
  }
  geometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  geometry.computeVertexNormals();
  const detail = t.detail ?? 0.5;
  const textures = detail > 0
    ? (t.kind === "sand" ? sandTextures(def.seed, lowPower ? 128 : 256) : groundTextures(def.seed, t.kind, lowPower ? 128 : 256))
    : null;
  const params = { vertexColors: true };
  if (textures) {
    params.map = textures.map;
    params.normalMap = textures.normalMap;
    params.normalScale = new THREE.Vector2(detail * 1.6, detail * 1.6);
  }
  const material = def.atmosphere.dapple > 0
    ? dappleMaterial(params, uniforms, def.atmosphere.dapple)
    : new THREE.MeshLambertMaterial(params);
  const mesh = new THREE.Mesh(geometry, material);
  mesh.name = "terrain";
  mesh.receiveShadow = true;
  mesh.userData.textures = textures ? [textures.map, textures.normalMap] : [];
  return mesh;
}

// --- atmosphere ----------------------------------------------------------------------------

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

/** Pale shafts of sunlight through the canopy: soft-edged (bright where you look through a
 * beam's middle, fading at its sides), shimmering slowly; one merged mesh. */
export function buildShafts(def, sunDir, uniforms) {
  const n = def.atmosphere.light_shafts;
  if (!n) return null;
  const rand = mulberry32(mixSeed(def.seed, 404));
  const parts = [];
  const axis = new THREE.Vector3(0, 1, 0);
  const q = new THREE.Quaternion().setFromUnitVectors(axis, sunDir.clone().normalize());
  const sunAz = Math.atan2(sunDir.x, sunDir.z);
  for (let i = 0; i < n; i++) {
    const length = 34;
    const g = new THREE.CylinderGeometry(range(rand, 1.0, 1.8), range(rand, 0.45, 0.9), length, 14, 8, true);
    const p = g.attributes.position;
    const fade = new Float32Array(p.count);
    const phase = new Float32Array(p.count).fill(rand() * 6.28);
    for (let k = 0; k < p.count; k++) {
      const f = (p.getY(k) + length / 2) / length; // 0 at the ground, 1 at the canopy
      fade[k] = Math.sin(Math.PI * Math.min(1, f * 1.2)) ** 2 * range(rand, 0.9, 1.0);
    }
    g.setAttribute("aFade", new THREE.BufferAttribute(fade, 1));
    g.setAttribute("aPhase", new THREE.BufferAttribute(phase, 1));
    g.translate(0, length / 2, 0);
    g.applyQuaternion(q);
    // only on the sun's side of the circle, so no shaft leans over the seats
    const theta = sunAz + range(rand, -1.2, 1.2), r = range(rand, 8, 24);
    g.translate(Math.sin(theta) * r, -0.5, Math.cos(theta) * r);
    g.deleteAttribute("uv");
    parts.push(g);
  }
  const material = new THREE.ShaderMaterial({
    uniforms: { time: uniforms.time, color: { value: new THREE.Color(def.light.sun_color) },
      strength: { value: 0.16 } },
    vertexShader: `attribute float aFade; attribute float aPhase;
      varying float vFade; varying vec3 vNormalV; varying vec3 vViewV; varying float vPhase;
      void main() {
        vec4 mv = modelViewMatrix * vec4(position, 1.0);
        vFade = aFade; vPhase = aPhase;
        vNormalV = normalize(normalMatrix * normal);
        vViewV = normalize(-mv.xyz);
        gl_Position = projectionMatrix * mv;
      }`,
    fragmentShader: `uniform vec3 color; uniform float strength; uniform float time;
      varying float vFade; varying vec3 vNormalV; varying vec3 vViewV; varying float vPhase;
      void main() {
        float face = abs(dot(normalize(vNormalV), normalize(vViewV)));
        float soft = pow(face, 2.5);
        float shimmer = 0.8 + 0.2 * sin(time * 0.25 + vPhase);
        gl_FragColor = vec4(color * strength * vFade * soft * shimmer, 1.0);
        #include <colorspace_fragment>
      }`,
    transparent: true, blending: THREE.AdditiveBlending, depthWrite: false,
    side: THREE.DoubleSide, toneMapped: false,
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
