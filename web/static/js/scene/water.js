// The sea: three.js's Water addon (a mirror of the sky and the shore, rippled by a normal
// map, with the sun's glitter), given gentle swells in its vertex shader and, from the
// depth of the sand below, turquoise shallows that fade into the sand and foam at the shore.

import * as THREE from "three";
import { Water } from "three/addons/objects/Water.js";
import { waterNormalTexture } from "./textures.js";

export const WATER_Y = -0.3;

const smoothstep = (a, b, x) => {
  const t = Math.min(1, Math.max(0, (x - a) / (b - a)));
  return t * t * (3 - 2 * t);
};

function patch(source, find, replacement) {
  if (!source.includes(find)) throw new Error(`water shader: cannot find ${JSON.stringify(find)}`);
  return source.replace(find, replacement);
}

/** A grid in the addon's plane (x, y; +z up once the mesh is turned flat), dense by the
 * shore and coarse far out, with each vertex's depth and shallow-to-deep colour. */
function seaGeometry(def, heightAt, lowPower) {
  const w = def.water;
  const cols = lowPower ? 50 : 96;
  const rows = lowPower ? 32 : 60;
  const zNear = w.shore_z + 4;
  const zFar = -430;
  const width = 900;
  const positions = [], depths = [], colors = [], index = [];
  const shallow = new THREE.Color(w.color), deep = new THREE.Color(w.deep_color), c = new THREE.Color();
  for (let r = 0; r <= rows; r++) {
    const z = zNear + (zFar - zNear) * (r / rows) ** 2.2;
    for (let k = 0; k <= cols; k++) {
      const x = -width / 2 + (width * k) / cols;
      const depth = Math.max(0, WATER_Y - heightAt(x, z));
      positions.push(x, -z, 0);
      depths.push(depth);
      c.copy(shallow).lerp(deep, smoothstep(0.15, 4, depth));
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
    new Float32Array(positions.length).map((_, i) => (i % 3 === 2 ? 1 : 0)), 3));
  geometry.setAttribute("aColor", new THREE.Float32BufferAttribute(colors, 3));
  geometry.setAttribute("aDepth", new THREE.Float32BufferAttribute(depths, 1));
  geometry.setIndex(index);
  return geometry;
}

/**
 * The sea (name "water"). `userData.update(frameNo)` decides whether the mirror is redrawn
 * this frame; `userData.mirror` is its render target (for the memory figures).
 */
export function buildWater(def, heightAt, uniforms, sunDir, { lowPower, fog }) {
  const w = def.water;
  const normals = waterNormalTexture(def.seed);
  const reflections = w.reflections !== false;
  const size = lowPower ? 256 : 512;
  const water = new Water(seaGeometry(def, heightAt, lowPower), {
    textureWidth: reflections ? size : 1,
    textureHeight: reflections ? size : 1,
    waterNormals: normals,
    sunDirection: sunDir.clone().normalize(),
    sunColor: new THREE.Color(def.light.sun_color),
    waterColor: new THREE.Color(w.deep_color),
    distortionScale: 2.2,
    fog: !!fog,
    alpha: 1,
  });
  water.rotation.x = -Math.PI / 2;
  water.position.y = WATER_Y;
  water.name = "water";
  water.frustumCulled = false;
  const material = water.material;
  material.transparent = true;
  material.uniforms.size.value = 1.6;
  material.uniforms.time = uniforms.time; // share the scene's clock (stops when stilled)
  Object.assign(material.uniforms, {
    uAmp: { value: w.wave_height },
    uSpeed: { value: w.wave_speed },
    uFoam: { value: new THREE.Color(w.foam_color) },
    uSkyTint: { value: new THREE.Color(def.sky.horizon) },
  });
  material.vertexShader = `uniform float uAmp; uniform float uSpeed;
    attribute float aDepth; attribute vec3 aColor;
    varying float vDepth; varying vec3 vWaterColor;
    const vec2 WDIR[4] = vec2[4](vec2(0.0, 1.0), vec2(0.34, 0.94), vec2(-0.45, 0.89), vec2(0.8, 0.6));
    const float WLEN[4] = float[4](14.0, 8.5, 5.0, 2.9);
    const float WAMP[4] = float[4](0.5, 0.28, 0.14, 0.07);
    float havenSwell(vec2 p, float t) {
      float h = 0.0;
      for (int i = 0; i < 4; i++) {
        float k = 6.2831853 / WLEN[i];
        h += uAmp * WAMP[i] * sin(k * dot(WDIR[i], p) - sqrt(9.8 * k) * uSpeed * t);
      }
      return h;
    }
    ` + patch(patch(material.vertexShader,
    "mirrorCoord = modelMatrix * vec4( position, 1.0 );",
    `vec3 hvPos = position;
      // the plane's y is world -z: waves travel towards the shore (+z)
      hvPos.z += havenSwell(vec2(position.x, -position.y), time) * clamp(aDepth / 1.5, 0.15, 1.0);
      vDepth = aDepth;
      vWaterColor = aColor;
      mirrorCoord = modelMatrix * vec4( hvPos, 1.0 );`),
    "vec4 mvPosition =  modelViewMatrix * vec4( position, 1.0 );",
    "vec4 mvPosition =  modelViewMatrix * vec4( hvPos, 1.0 );");
  let fragment = material.fragmentShader;
  fragment = patch(fragment, "varying vec4 worldPosition;",
    "varying vec4 worldPosition;\nvarying float vDepth; varying vec3 vWaterColor;\nuniform vec3 uFoam;");
  // more of the sea's own colour at grazing angles (seated, we look across the water)
  fragment = patch(fragment, "vec3 scatter = max( 0.0, dot( surfaceNormal, eyeDirection ) ) * waterColor;",
    "vec3 scatter = (0.45 + 0.55 * max( 0.0, dot( surfaceNormal, eyeDirection ) )) * vWaterColor;");
  fragment = patch(fragment, "float reflectance = rf0 + ( 1.0 - rf0 ) * pow( ( 1.0 - theta ), 5.0 );",
    "float reflectance = (rf0 + ( 1.0 - rf0 ) * pow( ( 1.0 - theta ), 5.0 )) * 0.62;");
  fragment = patch(fragment, "vec3 outgoingLight = albedo;", `vec3 outgoingLight = albedo;
      // foam: a band that swashes up and down the shore, and a lacework of bubbles behind it
      float hvSwash = 0.5 + 0.5 * sin(time * 0.55);
      float hvEdge = smoothstep(0.14 + 0.1 * hvSwash, 0.0, vDepth);
      float hvLace = smoothstep(0.35, 0.9, noise.y * 0.5 + 0.5 + 0.35 * sin(vDepth * 30.0 - time * 1.1));
      float hvFoam = max(hvEdge, smoothstep(0.55, 0.04, vDepth) * hvLace * 0.55);
      outgoingLight = mix(outgoingLight, uFoam, clamp(hvFoam, 0.0, 0.92));`);
  fragment = patch(fragment, "gl_FragColor = vec4( outgoingLight, alpha );",
    "gl_FragColor = vec4( outgoingLight, alpha * smoothstep(0.0, 0.35, vDepth + 0.12 * hvFoam) * 0.92 + 0.08 * smoothstep(0.0, 1.5, vDepth));");
  material.fragmentShader = fragment;
  if (!reflections) material.uniforms.mirrorSampler.value = null;

  // The mirror pass: only what is worth reflecting (the sky, trees and rocks) and, in
  // low-power mode, a fresh reflection only every few frames (people sit still).
  const mirrorPass = water.onBeforeRender;
  let lastFrame = -1;
  water.userData = {
    frameNo: 0,
    every: lowPower ? 12 : 1,
    hide: [],
    reflections,
  };
  water.onBeforeRender = function (renderer, scene, camera, ...rest) {
    const u = water.userData;
    if (!reflections || u.frameNo === lastFrame) return;
    if (lastFrame >= 0 && u.frameNo - lastFrame < u.every) return;
    lastFrame = u.frameNo;
    const hidden = u.hide.filter((o) => o.visible);
    hidden.forEach((o) => { o.visible = false; });
    mirrorPass.call(this, renderer, scene, camera, ...rest);
    hidden.forEach((o) => { o.visible = true; });
  };
  water.userData.forceReflection = () => { lastFrame = -1; };
  water.userData.textures = [normals];
  return water;
}
