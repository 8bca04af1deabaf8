// The calm 3D scene: renders an environment definition with three.js, seated first-person
// in the circle. The session page embeds it; the preview page (/environments/{id}) too.
//
//   const scene = createScene(container, definition, {seatCount: 6});
//   scene.seats                 // [{index, x, y, z, yaw}] (y = seated ear height)
//   scene.placeAvatar(2, {color: "#e8a", label: "Sam"}); scene.setSeatHighlight(2, 0.8);
//   scene.setAvatarState(2, {muted: true, hand: true}); scene.setTalkingPiece(2);
//   scene.setReducedMotion(true); scene.setLowPower(true); scene.setEnvironment(otherDef);
//   await scene.enterVR(); scene.setSelfMuted(true); // VR: see xr.js
//   scene.dispose();

import * as THREE from "three";
import {
  bakeSky, buildClouds, buildGroundCover, buildInterior, buildMotes, buildProps, buildShafts,
  buildSky, buildTerrain, buildWater, makeHeightField, sunDirection,
} from "./builders.js";
import { AvatarLayer } from "./avatars.js";
import { SeatedXR } from "./xr.js";
import { renderTargetBytes, textureBytes } from "./textures.js";
import { MAX_PEOPLE, seatPositions } from "./seats.js";

export { seatPositions } from "./seats.js";
export { placeProps } from "./builders.js";
export { SNAP_TURN_DEG, TOGGLE_MUTE_EVENT, XR_MUTE_CONTROL } from "./xr.js";

const DEFAULT_FRAME_BUDGET_MS = 33;
const MONITOR_MS = 2000;
const LOW_POWER_PROP_FRACTION = 0.5;
const LABEL_CSS_PX = 26; // a name label's height on screen: its text is about 14 px
const LABEL_CSS_PX_SMALL = 23; // on a phone: text stays above 12 px

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

/** Whether this browser offers immersive VR (a headset, or an emulated one). */
export async function immersiveVrSupported() {
  try {
    return !!(navigator.xr && await navigator.xr.isSessionSupported("immersive-vr"));
  } catch {
    return false;
  }
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

function materialsOf(o) {
  return Array.isArray(o.material) ? o.material : o.material ? [o.material] : [];
}

function texturesOf(material) {
  const found = [];
  for (const value of Object.values(material)) if (value?.isTexture) found.push(value);
  for (const u of Object.values(material.uniforms ?? {})) if (u?.value?.isTexture) found.push(u.value);
  return found;
}

function disposeTree(root) {
  root.traverse((o) => {
    o.geometry?.dispose();
    for (const m of materialsOf(o)) {
      for (const t of texturesOf(m)) if (!t.isRenderTargetTexture) t.dispose();
      m.dispose();
    }
    if (o.isInstancedMesh) o.dispose();
  });
}

function cushionGeometry() {
  const profile = [[0, 0.01], [0.3, 0.01], [0.37, 0.04], [0.395, 0.085], [0.37, 0.13], [0.29, 0.16],
    [0.15, 0.175], [0, 0.178]].map(([r, y]) => new THREE.Vector2(r, y));
  const g = new THREE.LatheGeometry(profile, 28);
  g.deleteAttribute("uv");
  g.computeVertexNormals();
  return g;
}

/**
 * Render `definition` into `container`.
 * @param {HTMLElement} container  the canvas is appended here and follows its size
 * @param {object} definition      an environment definition (GET /api/environments/{id})
 * @param {object} [options]
 * @param {number} [options.seatCount=6]      how many seats in the circle (1..16)
 * @param {number} [options.viewerSeat=0]     the seat the camera sits in
 * @param {boolean} [options.reducedMotion]   start stilled (default: prefers-reduced-motion)
 * @param {boolean} [options.lowPower=false]  start in low-power mode
 * @param {boolean} [options.autoLowPower=true] switch to low power when frames are slow
 * @param {number} [options.frameBudgetMs=33] median frame time above which auto switches
 * @param {HTMLElement} [options.vrButton]    shown only where immersive VR is supported
 * @param {(on: boolean, reason: "auto"|"user") => void} [options.onLowPowerChange]
 * @param {(presenting: boolean) => void} [options.onXRChange]
 */
export function createScene(container, definition, options = {}) {
  const opts = {
    seatCount: 6, viewerSeat: 0, reducedMotion: prefersReducedMotion(), lowPower: false,
    autoLowPower: true, frameBudgetMs: DEFAULT_FRAME_BUDGET_MS, ...options,
  };
  let def = definition;
  let reducedMotion = !!opts.reducedMotion;
  let lowPower = !!opts.lowPower;
  const maxPeople = () => def.seating.max_people ?? MAX_PEOPLE;
  let seatCount = Math.min(Math.max(1, opts.seatCount | 0), maxPeople());
  let viewerSeat = opts.viewerSeat;
  let disposed = false;

  const renderer = new THREE.WebGLRenderer({ antialias: !lowPower, powerPreference: "low-power" });
  renderer.outputColorSpace = THREE.SRGBColorSpace;
  renderer.toneMapping = THREE.NeutralToneMapping;
  renderer.shadowMap.type = THREE.PCFShadowMap;
  renderer.shadowMap.enabled = true;
  renderer.info.autoReset = false; // counted per frame by draw(), mirror and shadow passes included
  renderer.xr.enabled = true;
  const canvas = renderer.domElement;
  canvas.classList.add("scene-canvas");
  canvas.setAttribute("aria-hidden", "true");
  container.appendChild(canvas);

  const scene = new THREE.Scene();
  const camera = new THREE.PerspectiveCamera(60, 16 / 9, 0.05, 1200);
  const rig = new THREE.Group();
  rig.name = "viewer-rig";
  rig.add(camera);
  scene.add(rig);

  const uniforms = { time: { value: 0 } };
  const avatars = new AvatarLayer(scene);
  avatars.onChange = () => requestRender();
  let world = null;
  let seats = [];
  let portraitPull = 0; // metres the non-VR view sits behind the seat (upright phones)
  const cushionGlow = new Map();

  let time = 0;
  let lastNow = 0;
  let looping = false;
  let renderQueued = false;
  let frameNo = 0;
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
    const textures = [];

    scene.fog = new THREE.Fog(new THREE.Color(def.fog.color), def.fog.near, def.fog.far);
    const sky = buildSky(def, sunDir);
    const skyCube = bakeSky(renderer, sky, lowPower ? 64 : 128);
    scene.background = skyCube.texture;
    sky.visible = !lowPower; // low power: the still, baked sky (no per-pixel sky maths)
    group.add(sky);
    if (sky.material.uniforms?.time) sky.material.uniforms.time = uniforms.time;

    const terrain = buildTerrain(def, heightAt, uniforms, lowPower);
    group.add(terrain);
    textures.push(...terrain.userData.textures);

    let interior = null;
    if (def.interior) {
      interior = buildInterior(def, uniforms, lowPower);
      group.add(interior.group);
      textures.push(...interior.textures);
    }

    const hemi = new THREE.HemisphereLight(new THREE.Color(def.light.ambient_color),
      new THREE.Color(def.sky.ground), def.light.ambient_intensity);
    group.add(hemi);
    const sun = new THREE.DirectionalLight(new THREE.Color(def.light.sun_color), def.light.sun_intensity);
    const reach = def.interior ? Math.hypot(def.interior.width, def.interior.depth) / 2 + 4 : 40;
    sun.position.set(cx, 0, cz).addScaledVector(sunDir, 80);
    sun.target.position.set(cx, 0, cz);
    sun.castShadow = true;
    sun.shadow.mapSize.setScalar(lowPower ? 1024 : 2048);
    Object.assign(sun.shadow.camera, { left: -reach, right: reach, top: reach, bottom: -reach, near: 1, far: 200 });
    sun.shadow.bias = -0.0004;
    sun.shadow.normalBias = 0.03;
    group.add(sun, sun.target);

    const { meshes: props } = buildProps(def, heightAt, uniforms, motion);
    props.forEach((m) => group.add(m));
    const cover = buildGroundCover(def, heightAt, uniforms, motion);
    cover.forEach((m) => group.add(m));
    const clouds = def.sky.physical ? null : buildClouds(def);
    const shafts = buildShafts(def, sunDir, uniforms);
    const motes = buildMotes(def);
    for (const o of [clouds, shafts, motes]) if (o) group.add(o);

    const cushions = new THREE.InstancedMesh(cushionGeometry(),
      new THREE.MeshLambertMaterial({ color: new THREE.Color(def.seating.seat_color) }), MAX_PEOPLE);
    cushions.name = "seats";
    cushions.castShadow = true;
    cushions.receiveShadow = true;
    group.add(cushions);

    let water = null;
    if (def.water) {
      water = buildWater(def, heightAt, uniforms, sunDir, { lowPower, fog: true });
      // the mirror shows the sky (its baked copy, as the background) and what stands tall
      water.userData.hide = [sky, terrain, cushions, ...cover, shafts, motes, interior?.group,
        avatars.orbs, avatars.halos, avatars.boards].filter(Boolean);
      group.add(water);
      textures.push(...water.userData.textures);
    }

    scene.add(group);
    world = { group, heightAt, sun, sky, skyCube, water, sunBase: def.light.sun_intensity, props, cover,
      clouds, shafts, motes, cushions, motion, textures, lamps: interior?.lights ?? [] };
    applyQuality();
    layoutSeats();
  }

  function rebuildWorld() {
    if (world) {
      scene.remove(world.group);
      disposeTree(world.group);
      world.skyCube.dispose();
      world = null;
    }
    buildWorld();
    requestRender();
  }

  function layoutSeats() {
    seats = seatPositions(def, seatCount);
    const { cushions, heightAt } = world;
    const m = new THREE.Matrix4();
    const q = new THREE.Quaternion();
    const one = new THREE.Vector3(1, 1, 1), none = new THREE.Vector3(0, 0, 0);
    cushions.count = seats.length;
    seats.forEach((s, i) => {
      q.setFromAxisAngle(new THREE.Vector3(0, 1, 0), s.yaw);
      // seen from just behind it (an upright phone), your own cushion would fill the view's foot
      const own = portraitPull > 0 && !xr.presenting && i === Math.min(viewerSeat, seats.length - 1);
      m.compose(new THREE.Vector3(s.x, heightAt(s.x, s.z), s.z), q, own ? none : one);
      cushions.setMatrixAt(i, m);
      cushions.setColorAt(i, new THREE.Color(1, 1, 1).multiplyScalar(1 + (cushionGlow.get(i) ?? 0) * 0.6));
    });
    cushions.instanceMatrix.needsUpdate = true;
    if (cushions.instanceColor) cushions.instanceColor.needsUpdate = true;
    cushions.computeBoundingSphere();
    avatars.layout(seats, heightAt);
    placeViewer();
    refreshShadows();
    requestRender();
  }

  function placeViewer() {
    const seat = seats[Math.min(Math.max(0, viewerSeat), seats.length - 1)];
    const ground = world.heightAt(seat.x, seat.z);
    if (xr.presenting) {
      // 'local' space: its origin is the head where the session began; put it at the seat's
      // eye height, facing the centre (plus any snap turns taken)
      rig.position.set(seat.x, ground + def.seating.eye_height, seat.z);
      rig.rotation.set(0, seat.yaw - xr.turns * (Math.PI / 6), 0);
      return;
    }
    rig.position.set(seat.x, ground, seat.z);
    rig.rotation.set(0, seat.yaw, 0);
    const r = Math.hypot(seat.x - (def.seating.center?.[0] ?? 0), seat.z - (def.seating.center?.[1] ?? 0));
    // (on an upright phone the view sits a little behind the seat, so the circle fits across)
    camera.position.set(0, def.seating.eye_height, portraitPull);
    camera.rotation.set(-Math.atan2(def.seating.eye_height - 0.75, Math.max(r + portraitPull, 0.5)) * 0.55, 0, 0);
  }

  function refreshShadows() {
    // low power: the shadow map is drawn once per change, not every frame
    renderer.shadowMap.autoUpdate = !lowPower;
    renderer.shadowMap.needsUpdate = true;
  }

  function applyQuality() {
    const dpr = window.devicePixelRatio || 1;
    renderer.setPixelRatio(lowPower ? Math.min(dpr, 1) * 0.7 : Math.min(dpr, 2));
    if (world) {
      for (const mesh of [...world.props, ...world.cover]) {
        const full = mesh.userData.fullCount;
        const fraction = mesh.userData.lowPowerFraction ?? LOW_POWER_PROP_FRACTION;
        mesh.count = lowPower ? Math.max(1, Math.ceil(full * fraction)) : full;
      }
      if (world.motes) world.motes.visible = !lowPower;
      world.sky.visible = !lowPower;
    }
    refreshShadows();
    resize();
  }

  // --- avatars ----------------------------------------------------------------------------

  function placeAvatar(i, appearance = {}) {
    avatars.place(i, appearance);
    requestRender();
  }

  function removeAvatar(i) {
    avatars.remove(i);
    requestRender();
  }

  /** Glow a seat (0..1): its avatar's orb brightens and a soft halo appears (speaking). */
  function setSeatHighlight(i, level) {
    const v = Math.min(1, Math.max(0, Number(level) || 0));
    if (!avatars.setGlow(i, v) && i >= 0 && i < seats.length) {
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
    if (world.motes) {
      world.motes.rotation.y = time * 0.01;
      world.motes.position.y = Math.sin(time * 0.2) * 0.2;
    }
    world.sun.intensity = world.sunBase * (1 + 0.05 * drift * Math.sin(time * 0.13));
    for (const [k, lamp] of world.lamps.entries()) {
      lamp.userData.base ??= lamp.intensity;
      lamp.intensity = lamp.userData.base * (1 + 0.012 * Math.sin(time * 0.7 + k));
    }
    avatars.animate(time, world.motion, reducedMotion);
    xr.update();
  }

  function draw() {
    const t0 = performance.now();
    frameNo += 1;
    if (world.water) world.water.userData.frameNo = frameNo;
    renderer.info.reset();
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
      world.water?.userData.forceReflection();
      update(0);
      draw();
    });
  }

  // A 60° vertical view is right for a laptop; on a phone held upright it leaves a sliver of
  // the circle (30° across), so widen it until the view is at least MIN_HFOV across, up to a cap
  // past which the picture would stretch at its edges, and step the view back a little (up to
  // 0.9 m) so the people across the circle fit.
  const BASE_FOV = 60, MIN_HFOV = 70, MAX_FOV = 108, MAX_PULL = 0.9;
  function fovFor(aspect) {
    const needed = 2 * Math.atan(Math.tan((MIN_HFOV * Math.PI) / 360) / aspect) * (180 / Math.PI);
    return Math.min(MAX_FOV, Math.max(BASE_FOV, needed));
  }

  function resize() {
    if (renderer.xr.isPresenting) return;
    const w = Math.max(1, container.clientWidth);
    const h = Math.max(1, container.clientHeight);
    renderer.setSize(w, h, false);
    camera.aspect = w / h;
    camera.fov = fovFor(camera.aspect);
    camera.updateProjectionMatrix();
    const pull = Math.min(MAX_PULL, Math.max(0, (1 - camera.aspect) * 1.7));
    if (pull !== portraitPull) {
      portraitPull = pull;
      if (world && seats.length) layoutSeats();
    }
    const ratio = renderer.getPixelRatio();
    avatars.setView(w * ratio, h * ratio, (w < 600 ? LABEL_CSS_PX_SMALL : LABEL_CSS_PX) * ratio, false);
    requestRender();
  }

  const observer = typeof ResizeObserver === "function" ? new ResizeObserver(() => resize()) : null;
  observer?.observe(container);

  function setLowPowerInternal(on, reason) {
    if (lowPower === !!on) return;
    lowPower = !!on;
    rebuildWorld(); // sizes of grids, textures and the mirror are chosen when building
    opts.onLowPowerChange?.(lowPower, reason);
  }

  // --- WebXR ------------------------------------------------------------------------------

  const xr = new SeatedXR({
    renderer, rig, camera, container,
    onStart() {
      layoutSeats(); // (shows your own cushion again: in VR you sit on it)
      avatars.setView(1, 1, 0, true);
      startLoop();
      opts.onXRChange?.(true);
    },
    onEnd() {
      layoutSeats();
      if (reducedMotion) stopLoop();
      resize();
      requestRender();
      opts.onXRChange?.(false);
    },
  });

  async function xrSupported() {
    return immersiveVrSupported();
  }

  async function refreshVrButton() {
    if (!opts.vrButton) return;
    const ok = await xrSupported();
    if (!disposed) opts.vrButton.hidden = !ok;
  }
  if (opts.vrButton) {
    opts.vrButton.hidden = true;
    refreshVrButton();
    navigator.xr?.addEventListener?.("devicechange", refreshVrButton);
  }

  // --- figures ----------------------------------------------------------------------------

  /** Texture memory (bytes, estimated from sizes and formats): textures, render targets. */
  function memory() {
    const seen = new Map();
    scene.traverse((o) => {
      for (const m of materialsOf(o)) for (const t of texturesOf(m)) if (!t.isRenderTargetTexture) seen.set(t.uuid, t);
    });
    const items = [...seen.values()].map((t) => ({ name: t.name || "texture", bytes: textureBytes(t) }));
    const targets = [];
    if (world) {
      targets.push({ name: "sky-cube", bytes: renderTargetBytes(world.skyCube) });
      if (world.sun.shadow.map) targets.push({ name: "shadow-map", bytes: renderTargetBytes(world.sun.shadow.map) });
      const mirror = world.water?.material.uniforms.mirrorSampler.value;
      if (mirror && world.water.userData.reflections) {
        const [w, h] = [mirror.image.width, mirror.image.height];
        targets.push({ name: "water-mirror", bytes: textureBytes(mirror) + w * h * 4 });
      }
    }
    const sum = (list) => list.reduce((a, b) => a + b.bytes, 0);
    return { textureBytes: sum(items), renderTargetBytes: sum(targets), totalBytes: sum(items) + sum(targets),
      textures: items, renderTargets: targets };
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
    get viewerSeat() {
      return Math.min(viewerSeat, seats.length - 1);
    },
    renderer,
    camera,
    setSeatHighlight,
    placeAvatar,
    removeAvatar,
    clearAvatars() {
      avatars.clear();
      requestRender();
    },
    /** Show a person's muted mark and raised hand (their avatar must be placed). */
    setAvatarState(i, state = {}) {
      const ok = avatars.setState(i, state);
      requestRender();
      return ok;
    },
    avatarState(i) {
      return avatars.stateOf(i);
    },
    /** The talking piece rests at `seat` (null: put away). */
    setTalkingPiece(seat) {
      avatars.setTalkingPiece(seat);
      requestRender();
    },
    setSeatCount(n) {
      seatCount = Math.min(Math.max(1, n | 0), maxPeople());
      layoutSeats();
      return api.seats;
    },
    setViewerSeat(i) {
      viewerSeat = Math.max(0, i | 0);
      layoutSeats();
      requestRender();
    },
    setEnvironment(next) {
      def = next;
      seatCount = Math.min(seatCount, maxPeople());
      rebuildWorld();
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
    /** The page tells the scene whether this person is muted (the VR mute button shows it). */
    setSelfMuted(muted) {
      xr.setMuted(muted);
      requestRender();
    },
    /** Darken the edges of the view briefly during snap turns in VR (on by default). */
    setComfortVignette(on) {
      xr.setVignette(on);
    },
    xrSupported,
    async enterVR() {
      return xr.enter();
    },
    async exitVR() {
      await xr.exit();
    },
    xrState() {
      return xr.state();
    },
    render() {
      update(0);
      world.water?.userData.forceReflection();
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
        textureMemoryBytes: memory().totalBytes,
      };
    },
    memory,
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
        draw();
        gl.readPixels(0, 0, 1, 1, gl.RGBA, gl.UNSIGNED_BYTE, pixel); // wait for the GPU
        times.push(performance.now() - t0);
      }
      const mem = memory();
      const result = {
        frames,
        medianMs: median(times),
        p95Ms: percentile(times, 0.95),
        meanMs: times.reduce((a, b) => a + b, 0) / times.length,
        drawCalls: renderer.info.render.calls,
        triangles: renderer.info.render.triangles,
        programs: renderer.info.programs?.length ?? null,
        textureBytes: mem.textureBytes,
        renderTargetBytes: mem.renderTargetBytes,
        textureMemoryBytes: mem.totalBytes,
        width: canvas.width,
        height: canvas.height,
        lowPower,
      };
      if (wasLooping) startLoop();
      return result;
    },
    dispose() {
      if (disposed) return;
      xr.dispose();
      stopLoop();
      disposed = true;
      observer?.disconnect();
      navigator.xr?.removeEventListener?.("devicechange", refreshVrButton);
      avatars.dispose();
      if (world) {
        disposeTree(world.group);
        world.skyCube.dispose();
      }
      renderer.dispose();
      canvas.remove();
      delete container.havenScene;
    },
  };
  // for tests and the curious: the scene of a container (document.getElementById("scene").havenScene)
  Object.defineProperty(container, "havenScene", { value: api, configurable: true });
  return api;
}
