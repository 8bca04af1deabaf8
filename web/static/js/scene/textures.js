// Procedural textures, made on the device from a seed (nothing to download): the sea's normal
// map, sand, grass and wooden floors, soft glows. And how much memory textures take, for the
// benchmark's figures.

import * as THREE from "three";
import { mixSeed, mulberry32 } from "./random.js";

/** Tileable value noise on a `period`-cell lattice: noise(x, y) in about [-1, 1]. */
function tileNoise(seed, period) {
  const rand = mulberry32(seed);
  const lattice = new Float32Array(period * period).map(() => rand() * 2 - 1);
  const at = (x, y) => lattice[(((y % period) + period) % period) * period + (((x % period) + period) % period)];
  const fade = (t) => t * t * t * (t * (t * 6 - 15) + 10);
  return (x, y) => {
    const xi = Math.floor(x), yi = Math.floor(y);
    const tx = fade(x - xi), ty = fade(y - yi);
    const a = at(xi, yi), b = at(xi + 1, yi), c = at(xi, yi + 1), d = at(xi + 1, yi + 1);
    return a + (b - a) * tx + (c - a) * ty + (a - b - c + d) * tx * ty;
  };
}

/** Fractal tileable noise over a size x size image: octaves of tileNoise, periods doubling. */
function fbmField(seed, size, basePeriod, octaves, gain = 0.5) {
  const layers = [];
  for (let o = 0; o < octaves; o++) layers.push(tileNoise(mixSeed(seed, o), basePeriod << o));
  return (px, py) => {
    let sum = 0, amp = 1, norm = 0;
    for (let o = 0; o < octaves; o++) {
      const p = basePeriod << o;
      sum += amp * layers[o]((px / size) * p, (py / size) * p);
      norm += amp;
      amp *= gain;
    }
    return sum / norm;
  };
}

function dataTexture(data, size, { srgb = false, repeat = true } = {}) {
  const texture = new THREE.DataTexture(data, size, size, THREE.RGBAFormat);
  texture.wrapS = texture.wrapT = repeat ? THREE.RepeatWrapping : THREE.ClampToEdgeWrapping;
  texture.magFilter = THREE.LinearFilter;
  texture.minFilter = THREE.LinearMipmapLinearFilter;
  texture.generateMipmaps = true;
  texture.anisotropy = 4;
  if (srgb) texture.colorSpace = THREE.SRGBColorSpace;
  texture.needsUpdate = true;
  return texture;
}

/** A tangent-space normal map from a height function h(px, py) over a tileable image. */
function normalsFromHeight(height, size, strength) {
  const h = new Float32Array(size * size);
  for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) h[y * size + x] = height(x, y);
  const data = new Uint8Array(size * size * 4);
  const at = (x, y) => h[((y + size) % size) * size + ((x + size) % size)];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const dx = (at(x + 1, y) - at(x - 1, y)) * strength;
      const dy = (at(x, y + 1) - at(x, y - 1)) * strength;
      const len = Math.hypot(dx, dy, 1);
      const i = (y * size + x) * 4;
      data[i] = Math.round((-dx / len * 0.5 + 0.5) * 255);
      data[i + 1] = Math.round((-dy / len * 0.5 + 0.5) * 255);
      data[i + 2] = Math.round((1 / len * 0.5 + 0.5) * 255);
      data[i + 3] = 255;
    }
  }
  return data;
}

/** The sea's ripples for three's Water addon (it samples the map at four scales). */
export function waterNormalTexture(seed, size = 256) {
  const noise = fbmField(mixSeed(seed, 71), size, 4, 5, 0.55);
  const data = normalsFromHeight((x, y) => noise(x, y), size, size / 10);
  const texture = dataTexture(data, size);
  texture.name = "water-normals";
  return texture;
}

/** Sand: fine grain and a little colour (map), and wind ripples with grain (normal map). */
export function sandTextures(seed, size = 256) {
  const grain = fbmField(mixSeed(seed, 81), size, 32, 3, 0.6);
  const warp = fbmField(mixSeed(seed, 82), size, 4, 3);
  const mottle = fbmField(mixSeed(seed, 83), size, 8, 2);
  const rand = mulberry32(mixSeed(seed, 84));
  const speck = new Float32Array(size * size).map(() => rand());
  const ripple = (x, y) => {
    const u = (x / size) * 2 * Math.PI * 4 + warp(x, y) * 3.0;
    const r = Math.sin(u + (y / size) * 2 * Math.PI);
    return Math.pow(0.5 + 0.5 * r, 1.4) * 0.5 + grain(x, y) * 0.35;
  };
  const normals = normalsFromHeight(ripple, size, 1.2);
  const color = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const s = speck[i];
      let v = 0.93 + grain(x, y) * 0.05 + mottle(x, y) * 0.04 + ripple(x, y) * 0.03;
      let r = v, g = v, b = v * 0.985;
      if (s > 0.985) { r *= 0.72; g *= 0.7; b *= 0.68; } // dark grains
      else if (s < 0.012) { r *= 1.06; g *= 1.05; b *= 1.06; } // bright shell grit
      color[i * 4] = Math.min(255, r * 255);
      color[i * 4 + 1] = Math.min(255, g * 255);
      color[i * 4 + 2] = Math.min(255, b * 255);
      color[i * 4 + 3] = 255;
    }
  }
  const map = dataTexture(color, size, { srgb: true });
  map.name = "sand-detail";
  const normalMap = dataTexture(normals, size);
  normalMap.name = "sand-normals";
  return { map, normalMap };
}

/** Meadow, moss or forest floor: blade-like streaks and soft patches. */
export function groundTextures(seed, kind, size = 256) {
  const fine = fbmField(mixSeed(seed, 91), size, 48, 2, 0.6);
  const patch = fbmField(mixSeed(seed, 92), size, 6, 3);
  const rand = mulberry32(mixSeed(seed, 93));
  const speck = new Float32Array(size * size).map(() => rand());
  const height = (x, y) => fine(x, y) * 0.6 + patch(x, y) * 0.4;
  const normals = normalsFromHeight(height, size, kind === "stone" ? 3 : 1.6);
  const color = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      const f = fine(x, y), p = patch(x, y);
      let r = 0.92 + f * 0.1 + p * 0.06, g = 0.92 + f * 0.12 + p * 0.08, b = 0.9 + f * 0.06;
      if (kind === "meadow" && speck[i] > 0.992) { r *= 1.12; g *= 1.1; b *= 0.8; } // dry grass
      if (kind === "meadow" && speck[i] < 0.01) { r *= 0.75; g *= 0.72; b *= 0.7; } // soil
      color[i * 4] = Math.min(255, r * 255);
      color[i * 4 + 1] = Math.min(255, g * 255);
      color[i * 4 + 2] = Math.min(255, b * 255);
      color[i * 4 + 3] = 255;
    }
  }
  const map = dataTexture(color, size, { srgb: true });
  map.name = `${kind}-detail`;
  const normalMap = dataTexture(normals, size);
  normalMap.name = `${kind}-normals`;
  return { map, normalMap };
}

/** A floor: wooden planks (grain, seams, a tint per board), tiles or soft carpet. */
export function floorTexture(seed, kind, size = 512) {
  const rand = mulberry32(mixSeed(seed, 111));
  const grain = fbmField(mixSeed(seed, 112), size, 4, 4, 0.6);
  const fine = fbmField(mixSeed(seed, 113), size, 64, 2);
  const color = new Uint8Array(size * size * 4);
  const boards = 8;
  const tints = Array.from({ length: boards * 4 }, () => 0.86 + rand() * 0.22);
  const offsets = Array.from({ length: boards }, () => rand());
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = y * size + x;
      let v;
      if (kind === "wood") {
        const row = Math.floor((y / size) * boards);
        const along = (x / size + offsets[row]) % 1;
        const piece = Math.floor(along * 2);
        const tint = tints[row * 4 + piece];
        const inRow = ((y / size) * boards) % 1;
        const seam = Math.min(inRow, 1 - inRow) < 0.025 || Math.min(along * 2 % 1, 1 - (along * 2 % 1)) < 0.004;
        const streak = Math.sin((y / size) * boards * Math.PI * 2 * 3 + grain(x * 0.2, y * 3) * 6) * 0.5 + 0.5;
        v = tint * (0.9 + streak * 0.1 + fine(x, y) * 0.03) * (seam ? 0.62 : 1);
      } else if (kind === "tile") {
        const tx = (x / size) * 4 % 1, ty = (y / size) * 4 % 1;
        const grout = Math.min(tx, 1 - tx, ty, 1 - ty) < 0.02;
        v = grout ? 0.75 : 0.95 + fine(x, y) * 0.04 + grain(x, y) * 0.03;
      } else {
        v = 0.9 + fine(x, y) * 0.08 + grain(x, y) * 0.04;
      }
      color[i * 4] = color[i * 4 + 1] = color[i * 4 + 2] = Math.min(255, v * 235);
      color[i * 4 + 3] = 255;
    }
  }
  const map = dataTexture(color, size, { srgb: true });
  map.name = `${kind}-floor`;
  return map;
}

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

// --- memory ---------------------------------------------------------------------------------

const BYTES_PER_TYPE = new Map([
  [THREE.UnsignedByteType, 1], [THREE.ByteType, 1], [THREE.HalfFloatType, 2],
  [THREE.FloatType, 4], [THREE.UnsignedShortType, 2], [THREE.UnsignedIntType, 4],
  [THREE.UnsignedInt248Type, 4],
]);
const CHANNELS = new Map([
  [THREE.RGBAFormat, 4], [THREE.RGFormat, 2], [THREE.RedFormat, 1], [THREE.DepthFormat, 1],
  [THREE.DepthStencilFormat, 1],
]);

function imageSize(texture) {
  const img = texture.image;
  if (!img) return [0, 0, 1];
  if (Array.isArray(img)) return [img[0]?.width ?? 0, img[0]?.height ?? 0, img.length];
  return [img.width ?? 0, img.height ?? 0, texture.isCubeTexture ? 6 : 1];
}

/** Bytes one texture takes on the GPU (estimate: its levels at their format and type). */
export function textureBytes(texture) {
  const [w, h, layers] = imageSize(texture);
  const type = texture.isCanvasTexture || texture.image instanceof HTMLCanvasElement
    ? THREE.UnsignedByteType : texture.type;
  const bpp = (CHANNELS.get(texture.format) ?? 4) * (BYTES_PER_TYPE.get(type) ?? 1);
  const mips = texture.generateMipmaps && texture.minFilter !== THREE.LinearFilter
    && texture.minFilter !== THREE.NearestFilter ? 4 / 3 : 1;
  return Math.round(w * h * layers * bpp * mips);
}

/** Bytes of a render target: its colour texture(s) and a 32-bit depth buffer. */
export function renderTargetBytes(target) {
  if (!target) return 0;
  const colour = (target.textures ?? [target.texture]).reduce((sum, t) => sum + textureBytes(t), 0);
  const layers = target.isWebGLCubeRenderTarget ? 6 : 1;
  const depth = target.depthBuffer ? target.width * target.height * layers * 4 : 0;
  return colour + depth;
}
