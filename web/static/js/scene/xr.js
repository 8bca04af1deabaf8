// Immersive VR for the scene, seated and comfortable:
// * the session uses the 'local' reference space, whose origin is where the head was when
//   it began; the viewer rig puts that origin at the person's seat, at the seated eye height,
//   facing the circle's centre. There is no locomotion and the horizon never tilts;
// * turning, for people who cannot turn their chair, is a snap of 30 degrees with a
//   thumbstick (never smooth), briefly veiled by an optional comfort vignette;
// * a mute button floats low in front of the person; pointing a controller at it and pulling
//   the trigger dispatches `haven:xr-toggle-mute` (bubbling) on the scene's container. The
//   page toggles mute and calls the scene's `setSelfMuted(muted)`, which redraws the button.

import * as THREE from "three";
import { loadIcon } from "./icons.js";

/** Where the mute button sits, in the rig's space (metres from the seated head's origin). */
export const XR_MUTE_CONTROL = Object.freeze({ position: [0, -0.42, -0.62], radius: 0.085 });
export const SNAP_TURN_DEG = 30;
export const TOGGLE_MUTE_EVENT = "haven:xr-toggle-mute";

const BUTTON_PX = 256;

function vignetteMaterial() {
  return new THREE.ShaderMaterial({
    uniforms: { strength: { value: 0 } },
    vertexShader: `varying vec2 vUv;
      void main() { vUv = uv; gl_Position = projectionMatrix * modelViewMatrix * vec4(position, 1.0); }`,
    fragmentShader: `uniform float strength; varying vec2 vUv;
      void main() {
        float d = length(vUv - 0.5) * 2.0;
        float a = smoothstep(0.35, 0.85, d) * strength;
        gl_FragColor = vec4(0.02, 0.03, 0.04, a);
      }`,
    transparent: true, depthTest: false, depthWrite: false, toneMapped: false,
  });
}

export class SeatedXR {
  /**
   * @param {object} o
   * @param {THREE.WebGLRenderer} o.renderer
   * @param {THREE.Group} o.rig        the viewer rig (the camera is its child)
   * @param {THREE.Camera} o.camera
   * @param {HTMLElement} o.container  where the mute event is dispatched
   * @param {() => void} o.onStart     after the session starts (place the rig)
   * @param {() => void} o.onEnd       after it ends (restore the normal view)
   */
  constructor({ renderer, rig, camera, container, onStart, onEnd }) {
    Object.assign(this, { renderer, rig, camera, container, onStart, onEnd });
    this.session = null;
    this.starting = null;
    this.muted = false;
    this.vignetteOn = true;
    this.turns = 0;        // snap turns taken this session (+ right, - left)
    this.turnArmed = new Map();
    this.vignetteUntil = 0;
    this.selects = 0;
    this.controllers = [];
    this.raycaster = new THREE.Raycaster();
    this.buildControl();
    this.buildVignette();
  }

  // --- the mute button ---------------------------------------------------------------------

  buildControl() {
    this.canvas = document.createElement("canvas");
    this.canvas.width = this.canvas.height = BUTTON_PX;
    this.texture = new THREE.CanvasTexture(this.canvas);
    this.texture.colorSpace = THREE.SRGBColorSpace;
    this.texture.name = "xr-mute-button";
    const r = XR_MUTE_CONTROL.radius;
    this.control = new THREE.Mesh(new THREE.CircleGeometry(r * 1.6, 40), new THREE.MeshBasicMaterial({
      map: this.texture, transparent: true, depthTest: false, toneMapped: false,
    }));
    this.control.name = "xr-mute-control";
    this.control.renderOrder = 20;
    this.control.position.fromArray(XR_MUTE_CONTROL.position);
    // tilted up towards the eyes, never rolled
    this.control.lookAt(0, 0, 0); // (the rig is still at the origin here)
    this.control.visible = false;
    this.rig.add(this.control);
    this.hover = false;
    this.icons = {};
    for (const name of ["microphone", "microphone-off"]) {
      loadIcon(name).then((img) => {
        this.icons[name] = img;
        this.drawControl();
      });
    }
    this.drawControl();
  }

  drawControl() {
    const ctx = this.canvas.getContext("2d");
    const s = BUTTON_PX;
    ctx.clearRect(0, 0, s, s);
    ctx.beginPath();
    ctx.arc(s / 2, s / 2, s / 2 - 6, 0, Math.PI * 2);
    ctx.fillStyle = this.muted ? "rgba(150, 42, 42, 0.92)" : "rgba(24, 40, 48, 0.86)";
    ctx.fill();
    ctx.lineWidth = this.hover ? 14 : 6;
    ctx.strokeStyle = this.hover ? "#ffffff" : "rgba(255,255,255,0.7)";
    ctx.stroke();
    const icon = this.icons[this.muted ? "microphone-off" : "microphone"];
    if (icon) ctx.drawImage(icon, s * 0.3, s * 0.16, s * 0.4, s * 0.4);
    ctx.fillStyle = "#ffffff";
    ctx.font = "600 40px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(this.muted ? "Unmute" : "Mute", s / 2, s * 0.72);
    this.texture.needsUpdate = true;
  }

  setMuted(muted) {
    this.muted = !!muted;
    this.drawControl();
  }

  // --- comfort ---------------------------------------------------------------------------

  buildVignette() {
    this.vignette = new THREE.Mesh(new THREE.PlaneGeometry(1.2, 1.2), vignetteMaterial());
    this.vignette.name = "comfort-vignette";
    this.vignette.position.set(0, 0, -0.25);
    this.vignette.renderOrder = 30;
    this.vignette.visible = false;
    this.camera.add(this.vignette);
  }

  setVignette(on) {
    this.vignetteOn = !!on;
  }

  /** Turn the rig by `steps` snaps about the head, keeping the head where it is. */
  snapTurn(steps) {
    const head = new THREE.Vector3();
    this.camera.getWorldPosition(head);
    const angle = -steps * SNAP_TURN_DEG * (Math.PI / 180);
    const offset = this.rig.position.clone().sub(head).applyAxisAngle(new THREE.Vector3(0, 1, 0), angle);
    this.rig.position.copy(head).add(offset);
    this.rig.rotation.set(0, this.rig.rotation.y + angle, 0);
    this.turns += steps;
    if (this.vignetteOn) this.vignetteUntil = performance.now() + 260;
  }

  // --- controllers -----------------------------------------------------------------------

  addControllers() {
    if (this.controllers.length) return;
    const rayGeo = new THREE.BufferGeometry().setFromPoints([new THREE.Vector3(0, 0, 0), new THREE.Vector3(0, 0, -1)]);
    for (let i = 0; i < 2; i++) {
      const c = this.renderer.xr.getController(i);
      const ray = new THREE.Line(rayGeo, new THREE.LineBasicMaterial({ color: "#ffffff", transparent: true, opacity: 0.55 }));
      ray.name = "ray";
      ray.scale.z = 1.5;
      c.add(ray);
      const tip = new THREE.Mesh(new THREE.SphereGeometry(0.012, 10, 8), new THREE.MeshBasicMaterial({ color: "#ffffff" }));
      c.add(tip);
      c.addEventListener("select", () => this.onSelect(c));
      c.addEventListener("connected", (e) => { c.userData.source = e.data; });
      c.addEventListener("disconnected", () => { c.userData.source = null; });
      this.rig.add(c);
      this.controllers.push(c);
    }
  }

  aimAt(controller) {
    const m = new THREE.Matrix4().extractRotation(controller.matrixWorld);
    this.raycaster.ray.origin.setFromMatrixPosition(controller.matrixWorld);
    this.raycaster.ray.direction.set(0, 0, -1).applyMatrix4(m);
    this.control.updateMatrixWorld();
    return this.raycaster.intersectObject(this.control, false)[0] ?? null;
  }

  onSelect(controller) {
    if (!this.session || !this.aimAt(controller)) return;
    this.selects += 1;
    this.container.dispatchEvent(new CustomEvent(TOGGLE_MUTE_EVENT, { bubbles: true }));
  }

  /** Every XR frame: hover feedback, snap turns, the vignette. */
  update() {
    if (!this.session) return;
    let hover = false;
    for (const c of this.controllers) {
      const hit = c.visible ? this.aimAt(c) : null;
      const ray = c.getObjectByName("ray");
      if (ray) ray.scale.z = hit ? hit.distance : 1.5;
      hover ||= !!hit;
      const pad = c.userData.source?.gamepad;
      if (pad && pad.axes.length >= 2) {
        const x = pad.axes.length >= 4 ? pad.axes[2] : pad.axes[0];
        const armed = this.turnArmed.get(c) ?? true;
        if (armed && Math.abs(x) > 0.7) {
          this.snapTurn(Math.sign(x));
          this.turnArmed.set(c, false);
        } else if (Math.abs(x) < 0.3) {
          this.turnArmed.set(c, true);
        }
      }
    }
    if (hover !== this.hover) {
      this.hover = hover;
      this.drawControl();
    }
    const left = this.vignetteUntil - performance.now();
    this.vignette.visible = left > 0;
    this.vignette.material.uniforms.strength.value = Math.min(1, Math.max(0, left / 160));
  }

  // --- the session -----------------------------------------------------------------------

  get presenting() {
    return !!this.session;
  }

  async enter() {
    if (this.session) return "local";
    if (this.starting) return this.starting;
    if (!navigator.xr) throw new Error("WebXR is not available");
    this.starting = (async () => {
      const session = await navigator.xr.requestSession("immersive-vr", { optionalFeatures: ["local-floor"] });
      this.renderer.xr.setReferenceSpaceType("local");
      this.session = session;
      this.turns = 0;
      session.addEventListener("end", () => {
        this.session = null;
        this.control.visible = false;
        this.vignette.visible = false;
        for (const c of this.controllers) c.visible = false;
        this.onEnd?.();
      });
      this.addControllers();
      await this.renderer.xr.setSession(session);
      this.control.visible = true;
      for (const c of this.controllers) c.visible = true;
      this.onStart?.();
      return "local";
    })();
    try {
      return await this.starting;
    } finally {
      this.starting = null;
    }
  }

  async exit() {
    await this.session?.end();
  }

  /** Figures for tests: what the XR camera shows and where it is. */
  state() {
    const xrCamera = this.renderer.xr.getCamera();
    // three copies the headset's pose into the page's camera (a child of the rig) each frame
    const head = this.camera.getWorldPosition(new THREE.Vector3());
    const turn = this.camera.getWorldQuaternion(new THREE.Quaternion());
    const forward = new THREE.Vector3(0, 0, -1).applyQuaternion(turn);
    const up = new THREE.Vector3(0, 1, 0).applyQuaternion(turn);
    return {
      presenting: !!this.session,
      views: xrCamera.cameras?.length ?? 0,
      viewports: (xrCamera.cameras ?? []).map((c) => c.viewport ? [c.viewport.x, c.viewport.y, c.viewport.z, c.viewport.w] : null),
      head: head.toArray(),
      forward: forward.toArray(),
      up: up.toArray(),
      rigYaw: this.rig.rotation.y,
      rigPitch: this.rig.rotation.x,
      rigRoll: this.rig.rotation.z,
      turns: this.turns,
      selects: this.selects,
      muted: this.muted,
      vignette: this.vignetteOn,
      controls: { mute: this.control.getWorldPosition(new THREE.Vector3()).toArray() },
    };
  }

  dispose() {
    this.session?.end().catch(() => {});
    this.rig.remove(this.control);
    this.control.geometry.dispose();
    this.control.material.dispose();
    this.texture.dispose();
    this.camera.remove(this.vignette);
  }
}
