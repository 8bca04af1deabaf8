// The calm 3D scene: renders an environment definition with three.js, seated first-person
// in the circle. The session page embeds it; the preview page (/environments/{id}) too.
//
//   const scene = createScene(container, definition, {seatCount: 6});
//   scene.seats                 // [{index, x, y, z, yaw}] (y = seated ear height)
//   scene.placeAvatar(2, {color: "#e8a", label: "Sam"}); scene.setSeatHighlight(2, 0.8);
//   scene.setReducedMotion(true); scene.setLowPower(true); scene.setEnvironment(otherDef);
//   scene.dispose();

import * as THREE from "three";
import {
  radialTexture,
  buildClouds, buildMotes, buildProps, buildShafts, buildSky, buildTerrain, buildWater,
  makeHeightField, sunDirection,
} from "./builders.js";
import { seatPositions } from "./seats.js";

export { seatPositions } from "./seats.js";
export { placeProps } from "./builders.js";

const DEFAULT_FRAME_BUDGET_MS = 33;
const MONITOR_MS = 2000;
const LOW_POWER_PROP_FRACTION = 0.5;

/** True when this browser can give three.js a WebGL2 context. */
export function webglAvailable() {
  try {
    if (typeof WebGL2RenderingContext === "undefined") return false;
    const canvas = document.createElement("canvas");
    const gl = canvas.getContext("webgl2");
    if (!gl) return false;
    gl.getExtension("WEBGL_lose_context")?.loseContext();
    return true;
  } catch {
    return false;
  }
}

export function prefersReducedMotion() {
  return typeof matchMedia === "function" && matchMedia("(prefers-reduced-motion: reduce)").matches;
}

function median(values) {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

function percentile(values, p) {
  if (!values.length) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))];
}

function disposeTree(root) {
  root.traverse((o) => {
    o.geometry?.dispose();
    const mats = Array.isArray(o.material) ? o.material : o.material ? [o.material] : [];
    for (const m of mats) {
      m.map?.dispose();
      m.dispose();
    }
    if (o.isInstancedMesh) o.dispose();
  });
}

/**
 * Render `definition` into `container`.
 * @param {HTMLElement} container  the canvas is appended here and follows its size
 * @param {object} definition      an environment definition (GET /api/environments/{id})
 * @param {object} [options]
 * @param {number} [options.seatCount=6]      how many seats in the circle (1..12)
 * @param {number} [options.viewerSeat=0]     the seat the camera sits in
 * @param {boolean} [options.reducedMotion]   start stilled (default: prefers-reduced-motion)
 * @param {boolean} [options.lowPower=false]  start in low-power mode
 * @param {boolean} [options.autoLowPower=true] switch to low power when frames are slow
 * @param {number} [options.frameBudgetMs=33] median frame time above which auto switches
 * @param {(on: boolean, reason: "auto"|"user") => void} [options.onLowPowerChange]
 */
export function createScene(container, definition, options = {}) {
  const opts = {
    seatCount: 6, viewerSeat: 0, reducedMotion: prefersReducedMotion(), lowPower: false,
    autoLowPower: true, frameBudgetMs: DEFAULT_FRAME_BUDGET_MS, ...options,
  };
  let def = definition;
  let reducedMotion = !!opts.reducedMotion;
  let lowPower = !!opts.lowPower;
  let seatCount = Math.min(opts.seatCount, def.seating.max_people ?? 12);
  let viewerSeat = opts.viewerSeat;
  let disposed = false;

  const renderer = new THREE.WebGLRenderer({ antialias: !lowPower, powerPreference: "low-power" });
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.toneMapping = THREE.NeutralToneMapping;
  renderer.shadowMap.type = THREE.PCFShadowMap;
  renderer.xr.enabled = true;
  const canvas = renderer.domElement;
  canvas.classList.add("scene-canvas");
  canvas.setAttribute("aria-hidden", "true");
  container.appendChild(canvas);

  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(60, 16 / 9, 0.1, 1200);
  const rig = new THREE.Group();
  rig.name = "viewer-rig";
  rig.add(camera);
  scene.add(rig);

  const uniforms = { time: { value: 0 } };
  const halo = radialTexture([[0, 0.9], [0.35, 0.35], [1, 0]]);
  let world = null; // {group, heightAt, sun, props, clouds, shafts, motes, cushions}
  let seats = [];
  const avatars = new Map(); // seat index -> {orb, halo, glow, color, label, phase}
  const cushionGlow = new Map();

  let time = 0;
  let lastNow = 0;
  let looping = false;
  let renderQueued = false;
  const renderTimes = [];
  const monitor = { done: !opts.autoLowPower, start: 0, frames: [] };

  // --- building ---------------------------------------------------------------------------

  function buildWorld() {
    const group = new THREE.Group();
    group.name = "environment";
    const heightAt = makeHeightField(def);
    const sunDir = sunDirection(def.light);
    const [cx, cz] = def.seating.center ?? [0, 0];
    const motion = def.motion_intensity ?? 0.5;

    scene.fog = new THREE.Fog(new THREE.Color(def.fog.color), def.fog.near, def.fog.far);
    scene.background = new THREE.Color(def.sky.horizon);
    group.add(buildSky(def, sunDir));
    group.add(buildTerrain(def, heightAt, uniforms, lowPower));
    if (def.water) group.add(buildWater(def, heightAt, uniforms, lowPower));

    const hemi = new THREE.HemisphereLight(new THREE.Color(def.light.ambient_color),
      new THREE.Color(def.sky.ground), def.light.ambient_intensity);
    group.add(hemi);
    const sun = new THREE.DirectionalLight(new THREE.Color(def.light.sun_color), def.light.sun_intensity);
    sun.position.set(cx, 0, cz).addScaledVector(sunDir, 80);
    sun.target.position.set(cx, 0, cz);
    sun.castShadow = !lowPower;
    sun.shadow.mapSize.set(2048, 2048);
    Object.assign(sun.shadow.camera, { left: -40, right: 40, top: 40, bottom: -40, near: 1, far: 200 });
    sun.shadow.bias = -0.0004;
    sun.shadow.normalBias = 0.03;
    group.add(sun, sun.target);

    const { meshes: props } = buildProps(def, heightAt, uniforms, motion);
    props.forEach((m) => group.add(m));
    const clouds = buildClouds(def);
    const shafts = buildShafts(def, sunDir);
    const motes = buildMotes(def);
    for (const o of [clouds, shafts, motes]) if (o) group.add(o);

    const cushionGeo = new THREE.SphereGeometry(0.36, 20, 10);
    cushionGeo.scale(1, 0.32, 1);
    cushionGeo.translate(0, 0.1, 0);
    const cushions = new THREE.InstancedMesh(cushionGeo,
      new THREE.MeshLambertMaterial({ color: new THREE.Color(def.seating.seat_color) }),
      def.seating.max_people ?? 12);
    cushions.name = "seats";
    cushions.castShadow = true;
    cushions.receiveShadow = true;
    group.add(cushions);

    scene.add(group);
    world = { group, heightAt, sun, sunBase: def.light.sun_intensity, props, clouds, shafts, motes, cushions, motion };
    applyQuality();
    layoutSeats();
  }

  function layoutSeats() {
    seats = seatPositions(def, seatCount);
    const { cushions, heightAt } = world;
    const m = new THREE.Matrix4();
    const q = new THREE.Quaternion();
    const one = new THREE.Vector3(1, 1, 1);
    cushions.count = seats.length;
    seats.forEach((s, i) => {
      q.setFromAxisAngle(new THREE.Vector3(0, 1, 0), s.yaw);
      m.compose(new THREE.Vector3(s.x, heightAt(s.x, s.z), s.z), q, one);
      cushions.setMatrixAt(i, m);
      cushions.setColorAt(i, new THREE.Color(1, 1, 1).multiplyScalar(1 + (cushionGlow.get(i) ?? 0) * 0.6));
    });
    cushions.instanceMatrix.needsUpdate = true;
    if (cushions.instanceColor) cushions.instanceColor.needsUpdate = true;
    cushions.computeBoundingSphere();
    placeViewer();
    for (const [i, a] of avatars) {
      if (i >= seats.length) removeAvatar(i);
      else positionAvatar(i, a);
    }
    requestRender();
  }

  function placeViewer() {
    const seat = seats[Math.min(viewerSeat, seats.length - 1)];
    const ground = world.heightAt(seat.x, seat.z);
    const presenting = renderer.xr.isPresenting;
    rig.position.set(seat.x, ground + (presenting && rig.userData.localSpace ? def.seating.eye_height : 0), seat.z);
    rig.rotation.set(0, seat.yaw, 0);
    if (!presenting) {
      const r = Math.hypot(seat.x - (def.seating.center?.[0] ?? 0), seat.z - (def.seating.center?.[1] ?? 0));
      camera.position.set(0, def.seating.eye_height, 0);
      camera.rotation.set(-Math.atan2(def.seating.eye_height - 0.75, Math.max(r, 0.5)), 0, 0);
    }
  }

  function applyQuality() {
    const dpr = window.devicePixelRatio || 1;
    renderer.setPixelRatio(lowPower ? Math.min(dpr, 1) * 0.7 : Math.min(dpr, 2));
    renderer.shadowMap.enabled = !lowPower;
    if (world) {
      world.sun.castShadow = !lowPower;
      for (const mesh of world.props) {
        const full = mesh.userData.fullCount;
        mesh.count = lowPower ? Math.max(1, Math.ceil(full * LOW_POWER_PROP_FRACTION)) : full;
      }
      if (world.motes) world.motes.visible = !lowPower;
      world.group.traverse((o) => {
        if (o.material) o.material.needsUpdate = true;
      });
    }
    resize();
  }

  // --- avatars ----------------------------------------------------------------------------

  const orbGeometry = new THREE.SphereGeometry(0.2, 24, 16);

  function positionAvatar(i, a) {
    const s = seats[i];
    const ground = world.heightAt(s.x, s.z);
    a.base = ground + 0.95;
    a.orb.position.set(s.x, a.base, s.z);
    a.halo.position.copy(a.orb.position);
  }

  function placeAvatar(i, { color = "#f2d1a8", label = "" } = {}) {
    if (!Number.isInteger(i) || i < 0 || i >= seats.length) throw new RangeError("no such seat");
    removeAvatar(i);
    const c = new THREE.Color(color);
    const orb = new THREE.Mesh(orbGeometry, new THREE.MeshStandardMaterial({
      color: c, emissive: c, emissiveIntensity: 0.25, roughness: 0.35, transparent: true, opacity: 0.93,
    }));
    orb.name = `avatar:${i}`;
    orb.userData.label = label;
    const glowSprite = new THREE.Sprite(new THREE.SpriteMaterial({
      map: halo, color: c, transparent: true, depthWrite: false, blending: THREE.AdditiveBlending, opacity: 0,
    }));
    glowSprite.scale.setScalar(1.1);
    glowSprite.visible = false;
    const a = { orb, halo: glowSprite, glow: 0, color, label, phase: i * 1.7, base: 1 };
    positionAvatar(i, a);
    scene.add(orb, glowSprite);
    avatars.set(i, a);
    applyGlow(i);
    requestRender();
  }

  function removeAvatar(i) {
    const a = avatars.get(i);
    if (!a) return;
    scene.remove(a.orb, a.halo);
    a.orb.material.dispose();
    a.halo.material.dispose();
    avatars.delete(i);
    requestRender();
  }

  function applyGlow(i) {
    const a = avatars.get(i);
    if (!a) return;
    a.orb.material.emissiveIntensity = 0.25 + a.glow * 0.9;
    a.halo.material.opacity = a.glow * 0.75;
    a.halo.visible = a.glow > 0.02;
    a.halo.scale.setScalar(0.9 + a.glow * 0.7);
  }

  /** Glow a seat (0..1): its avatar's orb brightens and a soft halo appears (speaking). */
  function setSeatHighlight(i, level) {
    const v = Math.min(1, Math.max(0, Number(level) || 0));
    const a = avatars.get(i);
    if (a) {
      a.glow = v;
      applyGlow(i);
    } else if (i >= 0 && i < seats.length) {
      cushionGlow.set(i, v);
      world.cushions.setColorAt(i, new THREE.Color(1, 1, 1).multiplyScalar(1 + v * 0.6));
      if (world.cushions.instanceColor) world.cushions.instanceColor.needsUpdate = true;
    }
    requestRender();
  }

  // --- loop -------------------------------------------------------------------------------

  function update(dtSeconds) {
    if (!reducedMotion) time += Math.min(dtSeconds, 0.1);
    uniforms.time.value = time;
    const drift = def.light.drift ?? 0;
    if (world.clouds) world.clouds.rotation.y = time * 0.004 * drift;
    if (world.shafts) world.shafts.material.opacity = 0.35 * (0.75 + 0.25 * Math.sin(time * 0.23));
    if (world.motes) {
      world.motes.rotation.y = time * 0.01;
      world.motes.position.y = Math.sin(time * 0.2) * 0.2;
    }
    world.sun.intensity = world.sunBase * (1 + 0.05 * drift * Math.sin(time * 0.13));
    for (const a of avatars.values()) {
      const bob = reducedMotion ? 0 : Math.sin(time * 0.9 + a.phase) * 0.02 * world.motion;
      a.orb.position.y = a.base + bob;
      a.halo.position.y = a.orb.position.y;
    }
  }

  function draw() {
    const t0 = performance.now();
    renderer.render(scene, camera);
    renderTimes.push(performance.now() - t0);
    if (renderTimes.length > 120) renderTimes.shift();
  }

  function frame(now) {
    if (disposed) return;
    const dt = lastNow ? (now - lastNow) / 1000 : 1 / 60;
    lastNow = now;
    watchFrameTime(now, dt * 1000);
    update(dt);
    draw();
    if (!renderer.xr.isPresenting && reducedMotion) stopLoop();
  }

  function watchFrameTime(now, dtMs) {
    if (monitor.done || renderer.xr.isPresenting || reducedMotion || document.hidden) return;
    if (!monitor.start) {
      monitor.start = now;
      monitor.skip = 5;
      return;
    }
    if (monitor.skip > 0) {
      monitor.skip -= 1;
      monitor.start = now;
      return;
    }
    monitor.frames.push(dtMs);
    if (now - monitor.start < MONITOR_MS) return;
    monitor.done = true;
    monitor.medianMs = median(monitor.frames);
    if (!lowPower && monitor.medianMs > opts.frameBudgetMs) setLowPowerInternal(true, "auto");
  }

  function startLoop() {
    if (looping || disposed) return;
    looping = true;
    lastNow = 0;
    renderer.setAnimationLoop(frame);
  }

  function stopLoop() {
    if (!looping) return;
    looping = false;
    renderer.setAnimationLoop(null);
  }

  function requestRender() {
    if (disposed || looping || renderQueued || !world) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      if (disposed || looping) return;
      update(0);
      draw();
    });
  }

  function resize() {
    const w = Math.max(1, container.clientWidth);
    const h = Math.max(1, container.clientHeight);
    if (renderer.xr.isPresenting) return;
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.updateProjectionMatrix();
    requestRender();
  }

  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => resize()) : null;
  observer?.observe(container);

  function setLowPowerInternal(on, reason) {
    if (lowPower === !!on) return;
    lowPower = !!on;
    applyQuality();
    opts.onLowPowerChange?.(lowPower, reason);
  }

  // --- WebXR ------------------------------------------------------------------------------

  let xrSession = null;

  async function xrSupported() {
    try {
      return !!(navigator.xr && await navigator.xr.isSessionSupported("immersive-vr"));
    } catch {
      return false;
    }
  }

  /** Enter immersive VR, seated: 'local-floor' if the device offers it, otherwise 'local'
   * with the seated eye height added so the horizon sits where it should. */
  async function enterVR() {
    if (!navigator.xr) throw new Error("WebXR is not available");
    const session = await navigator.xr.requestSession("immersive-vr", {
      optionalFeatures: ["local-floor"],
    });
    let type = "local-floor";
    try {
      await session.requestReferenceSpace("local-floor");
    } catch {
      type = "local";
    }
    rig.userData.localSpace = type === "local";
    renderer.xr.setReferenceSpaceType(type);
    xrSession = session;
    session.addEventListener("end", () => {
      xrSession = null;
      rig.userData.localSpace = false;
      placeViewer();
      if (reducedMotion) stopLoop();
      resize();
    });
    await renderer.xr.setSession(session);
    placeViewer();
    startLoop();
    return type;
  }

  async function exitVR() {
    await xrSession?.end();
  }

  // --- public API -------------------------------------------------------------------------

  buildWorld();
  if (reducedMotion) requestRender();
  else startLoop();

  const api = {
    get seats() {
      return seats.map((s) => ({ ...s }));
    },
    get seatCount() {
      return seatCount;
    },
    get reducedMotion() {
      return reducedMotion;
    },
    get lowPower() {
      return lowPower;
    },
    get definition() {
      return def;
    },
    renderer,
    camera,
    setSeatHighlight,
    placeAvatar,
    removeAvatar,
    clearAvatars() {
      for (const i of [...avatars.keys()]) removeAvatar(i);
    },
    setSeatCount(n) {
      seatCount = Math.min(Math.max(1, n | 0), def.seating.max_people ?? 12);
      layoutSeats();
      return api.seats;
    },
    setViewerSeat(i) {
      viewerSeat = Math.max(0, i | 0);
      placeViewer();
      requestRender();
    },
    setEnvironment(next) {
      def = next;
      seatCount = Math.min(seatCount, def.seating.max_people ?? 12);
      if (world) {
        scene.remove(world.group);
        disposeTree(world.group);
      }
      buildWorld();
      requestRender();
    },
    setReducedMotion(on) {
      reducedMotion = !!on;
      if (reducedMotion) {
        if (!renderer.xr.isPresenting) stopLoop();
        requestRender();
      } else {
        startLoop();
      }
    },
    setLowPower(on) {
      monitor.done = true; // the person chose: never override them
      setLowPowerInternal(on, "user");
    },
    xrSupported,
    enterVR,
    exitVR,
    render() {
      update(0);
      draw();
    },
    /** Live figures: draw calls and triangles of the last frame, median render time (ms). */
    stats() {
      return {
        drawCalls: renderer.info.render.calls,
        triangles: renderer.info.render.triangles,
        renderMs: median(renderTimes),
        autoFrameMs: monitor.medianMs ?? null,
        lowPower,
        reducedMotion,
        pixelRatio: renderer.getPixelRatio(),
        width: canvas.width,
        height: canvas.height,
      };
    },
    /** Render `frames` frames back to back (waiting for the GPU each time) and report. */
    bench(frames = 120) {
      const wasLooping = looping;
      stopLoop();
      const gl = renderer.getContext();
      const pixel = new Uint8Array(4);
      const times = [];
      for (let i = 0; i < frames; i++) {
        const t0 = performance.now();
        update(1 / 60);
        renderer.render(scene, camera);
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel); // wait for the GPU
        times.push(performance.now() - t0);
      }
      const result = {
        frames,
        medianMs: median(times),
        p95Ms: percentile(times, 0.95),
        meanMs: times.reduce((a, b) => a + b, 0) / times.length,
        drawCalls: renderer.info.render.calls,
        triangles: renderer.info.render.triangles,
        programs: renderer.info.programs?.length ?? null,
        width: canvas.width,
        height: canvas.height,
        lowPower,
      };
      if (wasLooping) startLoop();
      return result;
    },
    dispose() {
      if (disposed) return;
      xrSession?.end().catch(() => {});
      stopLoop();
      disposed = true;
      observer?.disconnect();
      for (const i of [...avatars.keys()]) removeAvatar(i);
      if (world) disposeTree(world.group);
      orbGeometry.dispose();
      halo.dispose();
      renderer.dispose();
      canvas.remove();
    },
  };
  return api;
}
