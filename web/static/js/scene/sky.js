// The sky: three.js's Sky addon (Preetham's daylight model, with its own drifting clouds)
// when the definition has `sky.physical`, otherwise a soft gradient dome from three colours.
// Either way the sky is also baked once into a small cube map: the scene's background in
// low-power mode (no per-pixel sky maths) and what the sea reflects.

import * as THREE from "three";
import { Sky } from "three/addons/objects/Sky.js";

const SKY_SIZE = 1000; // inside the camera's far plane (1200) from any corner

function patch(source, find, replacement) {
  if (!source.includes(find)) throw new Error(`sky shader: cannot find ${JSON.stringify(find)}`);
  return source.replace(find, replacement);
}

function physicalSky(def, sunDir) {
  const p = def.sky.physical;
  const sky = new Sky();
  sky.scale.setScalar(SKY_SIZE);
  const u = sky.material.uniforms;
  u.turbidity.value = p.turbidity;
  u.rayleigh.value = p.rayleigh;
  u.mieCoefficient.value = p.mie_coefficient;
  u.mieDirectionalG.value = p.mie_directional_g;
  u.sunPosition.value.copy(sunDir).multiplyScalar(450000);
  u.cloudCoverage.value = p.cloud_coverage ?? 0;
  u.cloudDensity.value = 0.35;
  u.cloudElevation.value = 0.55;
  u.cloudScale.value = 0.00018;
  u.cloudSpeed.value = 0.000012;
  // the addon's output is scene-referred light; scale it to the rest of the scene
  u.uExposure = { value: p.exposure ?? 0.5 };
  sky.material.fragmentShader = "uniform float uExposure;\n" + patch(sky.material.fragmentShader,
    "gl_FragColor = vec4( texColor, 1.0 );", "gl_FragColor = vec4( texColor * uExposure, 1.0 );");
  return sky;
}

function gradientSky(def, sunDir) {
  const geometry = new THREE.SphereGeometry(SKY_SIZE * 0.45, 32, 16);
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
        gl_Position.z = gl_Position.w;
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
    toneMapped: false,
  });
  return new THREE.Mesh(geometry, material);
}

/** The sky mesh (name "sky"), with `userData.time` to drift its clouds. */
export function buildSky(def, sunDir) {
  const sky = def.sky.physical ? physicalSky(def, sunDir) : gradientSky(def, sunDir);
  sky.name = "sky";
  sky.renderOrder = -1;
  sky.frustumCulled = false;
  sky.material.depthWrite = false;
  sky.userData.reflect = true;
  return sky;
}

/** Render the sky alone into a cube map (faces of `size` px): a still copy of it. */
export function bakeSky(renderer, sky, size = 128) {
  const target = new THREE.WebGLCubeRenderTarget(size, { type: THREE.HalfFloatType });
  target.texture.name = "sky-cube";
  const bakeScene = new THREE.Scene();
  const clone = new THREE.Mesh(sky.geometry, sky.material);
  clone.scale.copy(sky.scale);
  clone.frustumCulled = false;
  bakeScene.add(clone);
  const cubeCamera = new THREE.CubeCamera(1, SKY_SIZE * 1.2, target);
  const xr = renderer.xr.enabled;
  renderer.xr.enabled = false;
  cubeCamera.update(renderer, bakeScene);
  renderer.xr.enabled = xr;
  return target;
}
