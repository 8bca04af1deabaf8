// The people in the circle: an orb at each seat (glowing while the person speaks), a name
// label that always faces you, a small muted mark, a raised-hand mark, and the talking piece
// (a glowing stone at its holder's seat). All of it instanced: five draw calls for sixteen
// people. Labels keep a readable size on screen (at least 12 px text on a phone) and, in VR,
// a fixed size in the world.

import * as THREE from "three";
import { loadIcon } from "./icons.js";

const MAX = 16;
const ATLAS_W = 1024, ATLAS_H = 512;
const SLOT_W = 256, SLOT_H = 64;            // label slots: 4 x 4 in the top half
const ICON = 128;                           // icon slots in the bottom half
const ICON_SLOTS = { muted: 0, hand: 1 };
const ORB_RADIUS = 0.2;
const LABEL_RISE = 0.42;                    // metres from the orb's centre to the label

function billboardMaterial(map) {
  return new THREE.ShaderMaterial({
    uniforms: {
      map: { value: map },
      uViewport: { value: new THREE.Vector2(1280, 720) },
      uPixelHeight: { value: 24 },  // label height on screen (device pixels); 0 in VR
      uWorldHeight: { value: 0.14 }, // label height in metres in VR
    },
    vertexShader: `attribute vec4 aRect; attribute vec2 aSize; attribute vec2 aOffset; attribute float aAlpha;
      uniform vec2 uViewport; uniform float uPixelHeight; uniform float uWorldHeight;
      varying vec2 vUv; varying float vAlpha;
      void main() {
        vUv = mix(aRect.xy, aRect.zw, uv);
        vAlpha = aAlpha;
        vec4 mv = modelViewMatrix * vec4(instanceMatrix[3].xyz, 1.0);
        vec2 local = position.xy * aSize + aOffset;
        if (uPixelHeight > 0.0) {
          vec4 clip = projectionMatrix * mv;
          clip.xy += local * uPixelHeight * 2.0 / uViewport * clip.w;
          gl_Position = clip;
        } else {
          mv.xy += local * uWorldHeight;
          gl_Position = projectionMatrix * mv;
        }
      }`,
    fragmentShader: `uniform sampler2D map; varying vec2 vUv; varying float vAlpha;
      void main() {
        vec4 c = texture2D(map, vUv);
        if (c.a * vAlpha < 0.01) discard;
        gl_FragColor = vec4(c.rgb, c.a * vAlpha);
        #include <colorspace_fragment>
      }`,
    transparent: true, depthTest: false, depthWrite: false, toneMapped: false,
  });
}

function haloMaterial() {
  return new THREE.ShaderMaterial({
    vertexShader: `attribute vec3 aColor; attribute float aGlow;
      varying vec2 vUv; varying vec3 vColor; varying float vGlow;
      void main() {
        vUv = uv; vColor = aColor; vGlow = aGlow;
        vec4 mv = modelViewMatrix * vec4(instanceMatrix[3].xyz, 1.0);
        mv.xy += position.xy * (0.9 + aGlow * 0.7);
        gl_Position = projectionMatrix * mv;
      }`,
    fragmentShader: `varying vec2 vUv; varying vec3 vColor; varying float vGlow;
      void main() {
        float d = length(vUv - 0.5) * 2.0;
        float a = smoothstep(1.0, 0.0, d);
        a = a * a * vGlow * 0.8;
        gl_FragColor = vec4(vColor * a, a);
        #include <colorspace_fragment>
      }`,
    transparent: true, depthWrite: false, blending: THREE.AdditiveBlending, toneMapped: false,
  });
}

export class AvatarLayer {
  constructor(scene) {
    this.people = new Map(); // seat -> {color, label, muted, hand, glow}
    this.seats = [];
    this.heightAt = () => 0;
    this.stone = null;
    this.pieceSeat = null;
    this.canvas = document.createElement("canvas");
    this.canvas.width = ATLAS_W;
    this.canvas.height = ATLAS_H;
    this.ctx = this.canvas.getContext("2d");
    this.atlas = new THREE.CanvasTexture(this.canvas);
    this.atlas.colorSpace = THREE.SRGBColorSpace;
    this.atlas.name = "avatar-labels";
    this.atlas.minFilter = THREE.LinearFilter;
    this.atlas.generateMipmaps = false;
    this.slots = new Map(); // seat -> label slot

    const orbGeo = new THREE.SphereGeometry(ORB_RADIUS, 24, 16);
    const orbMat = new THREE.MeshStandardMaterial({ roughness: 0.35, metalness: 0, color: "#ffffff" });
    this.glowAttr = new THREE.InstancedBufferAttribute(new Float32Array(MAX), 1);
    orbGeo.setAttribute("aGlow", this.glowAttr);
    orbMat.onBeforeCompile = (shader) => {
      shader.vertexShader = "attribute float aGlow;\nvarying float vGlow;\n" + shader.vertexShader.replace(
        "#include <begin_vertex>", "#include <begin_vertex>\nvGlow = aGlow;");
      shader.fragmentShader = "varying float vGlow;\n" + shader.fragmentShader.replace(
        "#include <emissivemap_fragment>", `#include <emissivemap_fragment>
          #ifdef USE_COLOR
            totalEmissiveRadiance += vColor.rgb * (0.25 + vGlow * 0.9);
          #endif`);
    };
    orbMat.customProgramCacheKey = () => "haven-orb";
    this.orbs = new THREE.InstancedMesh(orbGeo, orbMat, MAX);
    this.orbs.name = "avatars";
    this.orbs.count = 0;
    this.orbs.frustumCulled = false;

    const quad = new THREE.PlaneGeometry(1, 1);
    const haloGeo = quad.clone();
    this.haloColor = new THREE.InstancedBufferAttribute(new Float32Array(MAX * 3), 3);
    this.haloGlow = new THREE.InstancedBufferAttribute(new Float32Array(MAX), 1);
    haloGeo.setAttribute("aColor", this.haloColor);
    haloGeo.setAttribute("aGlow", this.haloGlow);
    this.halos = new THREE.InstancedMesh(haloGeo, haloMaterial(), MAX);
    this.halos.name = "avatar-halos";
    this.halos.count = 0;
    this.halos.frustumCulled = false;

    const n = MAX * 3; // a label, a muted mark and a hand mark per seat
    const boardGeo = quad.clone();
    this.rect = new THREE.InstancedBufferAttribute(new Float32Array(n * 4), 4);
    this.size = new THREE.InstancedBufferAttribute(new Float32Array(n * 2), 2);
    this.offset = new THREE.InstancedBufferAttribute(new Float32Array(n * 2), 2);
    this.alpha = new THREE.InstancedBufferAttribute(new Float32Array(n), 1);
    for (const [k, a] of Object.entries({ aRect: this.rect, aSize: this.size, aOffset: this.offset, aAlpha: this.alpha })) {
      boardGeo.setAttribute(k, a);
    }
    this.boards = new THREE.InstancedMesh(boardGeo, billboardMaterial(this.atlas), n);
    this.boards.name = "avatar-labels";
    this.boards.count = 0;
    this.boards.frustumCulled = false;
    this.boards.renderOrder = 10;

    scene.add(this.orbs, this.halos, this.boards);
    this.scene = scene;
    this.icons = {};
    for (const [name, file] of [["muted", "microphone-off"], ["hand", "hand-stop"]]) {
      loadIcon(file).then((img) => {
        this.icons[name] = img;
        this.drawIcon(name);
        // redraw only if a mark is showing (a stilled scene must not render for nothing)
        if ([...this.people.values()].some((p) => p.muted || p.hand)) this.onChange?.();
      });
      this.drawIcon(name);
    }
  }

  /** Where each seat is, and the ground height: call after the circle changes. */
  layout(seats, heightAt) {
    this.seats = seats;
    this.heightAt = heightAt;
    for (const i of [...this.people.keys()]) if (i >= seats.length) this.people.delete(i);
    this.rebuild();
  }

  drawIcon(name) {
    const ctx = this.ctx;
    const x = ICON_SLOTS[name] * ICON, y = ATLAS_H - ICON;
    ctx.clearRect(x, y, ICON, ICON);
    ctx.fillStyle = name === "muted" ? "rgba(120, 38, 38, 0.88)" : "rgba(44, 62, 92, 0.9)";
    ctx.beginPath();
    ctx.arc(x + ICON / 2, y + ICON / 2, ICON / 2 - 4, 0, Math.PI * 2);
    ctx.fill();
    ctx.strokeStyle = "rgba(255,255,255,0.85)";
    ctx.lineWidth = 5;
    ctx.stroke();
    const img = this.icons[name];
    if (img) ctx.drawImage(img, x + ICON * 0.2, y + ICON * 0.2, ICON * 0.6, ICON * 0.6);
    this.atlas.needsUpdate = true;
  }

  drawLabel(slot, text) {
    const ctx = this.ctx;
    const x = (slot % 4) * SLOT_W, y = Math.floor(slot / 4) * SLOT_H;
    ctx.clearRect(x, y, SLOT_W, SLOT_H);
    ctx.font = "600 34px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    let label = text || "";
    while (label.length > 1 && ctx.measureText(label).width > SLOT_W - 44) label = label.slice(0, -1);
    if (label !== text) label = `${label.trimEnd()}…`;
    const w = Math.min(SLOT_W - 4, ctx.measureText(label).width + 36);
    const left = x + (SLOT_W - w) / 2;
    ctx.fillStyle = "rgba(18, 26, 32, 0.72)"; // dark pill: readable on sand, sky or forest
    ctx.beginPath();
    ctx.roundRect(left, y + 6, w, SLOT_H - 12, (SLOT_H - 12) / 2);
    ctx.fill();
    ctx.fillStyle = "#ffffff";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.fillText(label, x + SLOT_W / 2, y + SLOT_H / 2 + 1);
    this.atlas.needsUpdate = true;
    return w / SLOT_W;
  }

  place(i, { color = "#f2d1a8", label = "", muted = false, hand = false } = {}) {
    if (!Number.isInteger(i) || i < 0 || i >= this.seats.length) throw new RangeError("no such seat");
    const prev = this.people.get(i);
    this.people.set(i, { color, label, muted: !!muted, hand: !!hand, glow: prev?.glow ?? 0, width: 1 });
    this.rebuild();
  }

  remove(i) {
    if (this.people.delete(i)) this.rebuild();
  }

  clear() {
    this.people.clear();
    this.rebuild();
  }

  has(i) {
    return this.people.has(i);
  }

  setState(i, state) {
    const p = this.people.get(i);
    if (!p) return false;
    if ("muted" in state) p.muted = !!state.muted;
    if ("hand" in state) p.hand = !!state.hand;
    this.rebuild();
    return true;
  }

  setGlow(i, level) {
    const p = this.people.get(i);
    if (!p) return false;
    p.glow = level;
    const k = this.index.get(i);
    if (k !== undefined) {
      this.glowAttr.setX(k, level);
      this.haloGlow.setX(k, level);
      this.glowAttr.needsUpdate = this.haloGlow.needsUpdate = true;
    }
    return true;
  }

  /** The talking piece: a glowing stone on the ground in front of `seat` (null: nobody). */
  setTalkingPiece(seat) {
    this.pieceSeat = Number.isInteger(seat) && seat >= 0 && seat < this.seats.length ? seat : null;
    if (!this.stone) {
      const geo = new THREE.IcosahedronGeometry(0.12, 2);
      geo.scale(1.25, 0.62, 1);
      this.stone = new THREE.Mesh(geo, new THREE.MeshStandardMaterial({
        color: "#f4e3c8", emissive: "#ffcf8a", emissiveIntensity: 0.9, roughness: 0.4,
      }));
      this.stone.name = "talking-piece";
      const glow = new THREE.Mesh(new THREE.PlaneGeometry(1, 1), haloMaterial());
      this.scene.add(this.stone);
      this.stoneGlow = new THREE.InstancedMesh(glow.geometry.clone(), haloMaterial(), 1);
      this.stoneGlow.geometry.setAttribute("aColor", new THREE.InstancedBufferAttribute(new Float32Array([1, 0.8, 0.5]), 3));
      this.stoneGlow.geometry.setAttribute("aGlow", new THREE.InstancedBufferAttribute(new Float32Array([0.6]), 1));
      this.stoneGlow.name = "talking-piece-glow";
      this.scene.add(this.stoneGlow);
    }
    const on = this.pieceSeat !== null;
    this.stone.visible = this.stoneGlow.visible = on;
    if (on) {
      const s = this.seats[this.pieceSeat];
      const inward = 0.55;
      const x = s.x - Math.sin(s.yaw) * inward, z = s.z - Math.cos(s.yaw) * inward;
      this.stone.position.set(x, this.heightAt(x, z) + 0.07, z);
      this.stoneGlow.setMatrixAt(0, new THREE.Matrix4().makeTranslation(x, this.heightAt(x, z) + 0.1, z));
      this.stoneGlow.instanceMatrix.needsUpdate = true;
    }
  }

  rebuild() {
    const m = new THREE.Matrix4();
    const c = new THREE.Color();
    this.index = new Map();
    let k = 0, b = 0;
    const board = (pos, rect, size, offset, alpha) => {
      m.makeTranslation(pos.x, pos.y, pos.z);
      this.boards.setMatrixAt(b, m);
      this.rect.setXYZW(b, ...rect);
      this.size.setXY(b, ...size);
      this.offset.setXY(b, ...offset);
      this.alpha.setX(b, alpha);
      b++;
    };
    const iconRect = (name) => {
      const x = ICON_SLOTS[name] * ICON;
      return [x / ATLAS_W, 0, (x + ICON) / ATLAS_W, ICON / ATLAS_H];
    };
    let slot = 0;
    for (const [i, p] of [...this.people.entries()].sort((a, z) => a[0] - z[0])) {
      const s = this.seats[i];
      if (!s) continue;
      const ground = this.heightAt(s.x, s.z);
      p.base = ground + 0.95;
      m.makeTranslation(s.x, p.base, s.z);
      this.orbs.setMatrixAt(k, m);
      this.orbs.setColorAt(k, c.set(p.color));
      this.halos.setMatrixAt(k, m);
      this.haloColor.setXYZ(k, c.r, c.g, c.b);
      this.glowAttr.setX(k, p.glow);
      this.haloGlow.setX(k, p.glow);
      this.index.set(i, k);
      k++;
      // the label: atlas slot, drawn once per change
      const width = this.drawLabel(slot, p.label);
      const u0 = (slot % 4) * SLOT_W, v0 = Math.floor(slot / 4) * SLOT_H;
      const rect = [u0 / ATLAS_W, 1 - (v0 + SLOT_H) / ATLAS_H, (u0 + SLOT_W) / ATLAS_W, 1 - v0 / ATLAS_H];
      const top = new THREE.Vector3(s.x, p.base + LABEL_RISE, s.z);
      board(top, rect, [SLOT_W / SLOT_H, 1], [0, 0], p.label ? 1 : 0);
      const halfLabel = (width * SLOT_W / SLOT_H) / 2;
      board(top, iconRect("muted"), [0.9, 0.9], [halfLabel + 0.55, 0], p.muted ? 1 : 0);
      board(top, iconRect("hand"), [1.3, 1.3], [0, 1.35], p.hand ? 1 : 0);
      slot++;
    }
    this.orbs.count = this.halos.count = k;
    this.boards.count = b;
    for (const mesh of [this.orbs, this.halos, this.boards]) mesh.instanceMatrix.needsUpdate = true;
    if (this.orbs.instanceColor) this.orbs.instanceColor.needsUpdate = true;
    for (const a of [this.haloColor, this.haloGlow, this.glowAttr, this.rect, this.size, this.offset, this.alpha]) a.needsUpdate = true;
    this.orbs.visible = this.halos.visible = this.boards.visible = k > 0;
    if (this.pieceSeat !== null) this.setTalkingPiece(this.pieceSeat);
  }

  /** Gentle bobbing (none when stilled). */
  animate(time, motion, still) {
    if (!this.index?.size) return;
    const m = new THREE.Matrix4();
    for (const [i, k] of this.index) {
      const p = this.people.get(i), s = this.seats[i];
      const y = p.base + (still ? 0 : Math.sin(time * 0.9 + i * 1.7) * 0.02 * motion);
      m.makeTranslation(s.x, y, s.z);
      this.orbs.setMatrixAt(k, m);
      this.halos.setMatrixAt(k, m);
    }
    this.orbs.instanceMatrix.needsUpdate = this.halos.instanceMatrix.needsUpdate = true;
  }

  /** Screen-sized labels outside VR (`pixelHeight` device px), world-sized in VR. */
  setView(width, height, pixelHeight, inXR) {
    const u = this.boards.material.uniforms;
    u.uViewport.value.set(width, height);
    u.uPixelHeight.value = inXR ? 0 : pixelHeight;
  }

  get count() {
    return this.people.size;
  }

  stateOf(i) {
    const p = this.people.get(i);
    return p ? { color: p.color, label: p.label, muted: p.muted, hand: p.hand, glow: p.glow } : null;
  }

  dispose() {
    for (const mesh of [this.orbs, this.halos, this.boards, this.stone, this.stoneGlow]) {
      if (!mesh) continue;
      this.scene.remove(mesh);
      mesh.geometry.dispose();
      mesh.material.dispose();
    }
    this.atlas.dispose();
  }
}
