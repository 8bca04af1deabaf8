// The session page: lobby, then an end-to-end encrypted voice room inside the chosen place.
//
// Protocol: docs/protocol.md (join -> joined, keys/key, offer -> answer, slots, member_*).
// Encryption: ./e2ee/ (SFrame in an encoded-transform worker; identity key in IndexedDB,
// non-extractable). A browser without encoded transforms is refused: voice is never sent
// unencrypted. State for tests and diagnostics: window.havenSession.

import { CodeRoundError, SecurityCodeRound } from "./e2ee/code-round.js";
import { loadOrCreateIdentity } from "./e2ee/identity.js";
import { SenderKeyManager } from "./e2ee/manager.js";
import { FrameCrypto, encodedTransformSupport, peerConnectionConfig } from "./e2ee/transform.js";
import { iceServersFrom } from "./ice.js";
import { seatPositions } from "./scene/seats.js";
import { SessionAudio } from "./session-audio.js";

const $ = (id) => document.getElementById(id);
const root = $("session");
const roomId = root.dataset.roomId;
const definitions = JSON.parse($("environment-definitions").textContent);
const token = decodeURIComponent(location.hash.slice(1));
const DOWNSTREAM_SLOTS = 11;
const SPEAKING_LEVEL = 0.02;
const PREFS_KEY = "haven.session.prefs";
const IN_CALL_KEY = `haven.inCall.${roomId}`; // sessionStorage: rejoin by itself after a reload

const state = {
  phase: "lobby", // lobby | joining | in-room | reconnecting | ended | refused
  participantId: null,
  senderId: null,
  roomRole: "member",
  securityCode: "",
  members: new Map(), // participant_id -> member object (others)
  slots: new Map(), // mid -> participant_id
  muted: false,
  mutedByHost: false,
  environment: root.dataset.environment,
  audioOnly: false,
  reconnects: 0,
  endedReason: null,
};

let identity = null;
let ws = null;
let pc = null;
let manager = null;
let codeRound = null;
let frameCrypto = null;
let audio = null;
let micStream = null;
let scene = null;
let sceneModule = null;
let messageChain = Promise.resolve();
let reconnectTimer = null;
let qualityTimer = null;
let levelTimer = null;
let wantClose = false;

function announce(id, text) {
  $(id).textContent = text;
}

function show(panel) {
  for (const id of ["lobby", "room", "ended", "unsupported", "no-token"]) $(id).hidden = id !== panel;
}

function prefs() {
  try {
    return JSON.parse(localStorage.getItem(PREFS_KEY) || "{}");
  } catch {
    return {};
  }
}

function savePrefs(update) {
  try {
    localStorage.setItem(PREFS_KEY, JSON.stringify({ ...prefs(), ...update }));
  } catch {
    /* private mode */
  }
}

// --- the scene (optional: audio-only mode and browsers without WebGL skip it) ---------------

async function loadScene() {
  if (state.audioOnly || scene) return;
  try {
    sceneModule = await import("./scene/scene.js");
    if (!sceneModule.webglAvailable()) return;
    scene = sceneModule.createScene($("scene"), definitions[state.environment], {
      seatCount: 1, reducedMotion: prefs().still ?? sceneModule.prefersReducedMotion(),
    });
    $("still").setAttribute("aria-pressed", String(!!(prefs().still ?? sceneModule.prefersReducedMotion())));
    scene.xrSupported().then((ok) => { $("enter-vr").hidden = !ok; });
  } catch (err) {
    console.warn("scene unavailable", err);
    scene = null;
  }
}

function unloadScene() {
  scene?.dispose();
  scene = null;
}

function setEnvironment(id) {
  if (!definitions[id]) return;
  state.environment = id;
  $("environment-select").value = id;
  $("room-environment").value = id;
  const def = definitions[id];
  $("scene").setAttribute("aria-label", `${def.name}: ${def.description}`);
  $("scene").style.setProperty("--scene-sky", def.sky.zenith);
  $("scene").style.setProperty("--scene-horizon", def.sky.horizon);
  scene?.setEnvironment(def);
  layoutSeats();
}

// --- people, seats and voices ---------------------------------------------------------------

function everyone() {
  const me = { participant_id: state.participantId, sender_id: state.senderId, self: true };
  return [me, ...state.members.values()].sort((a, b) => a.sender_id - b.sender_id);
}

function colorFor(member) {
  if (member.color) return member.color;
  const palette = ["#a8d5c9", "#f2b8a2", "#c7b8ea", "#f5d98e", "#9fc4e8", "#e8a9c4", "#b9dc9a"];
  let h = 0;
  for (const c of member.participant_id) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return palette[h % palette.length];
}

function midOf(participantId) {
  for (const [mid, pid] of state.slots) if (pid === participantId) return mid;
  return null;
}

function layoutSeats() {
  if (!state.participantId) return;
  const people = everyone();
  const def = definitions[state.environment];
  const seats = seatPositions(def, Math.max(1, Math.min(people.length, def.seating.max_people ?? 12)));
  const mySeat = people.findIndex((p) => p.self);
  if (scene) {
    scene.setSeatCount(seats.length);
    scene.setViewerSeat(mySeat);
    scene.clearAvatars();
    people.forEach((p, i) => {
      if (!p.self) scene.placeAvatar(i, { color: colorFor(p), label: p.display_name });
    });
  }
  if (audio) {
    const byMid = new Map();
    people.forEach((p, i) => {
      const mid = p.self ? null : midOf(p.participant_id);
      if (mid) byMid.set(mid, seats[i]);
    });
    audio.placeSeats(seats[mySeat], byMid, def.seating.center ?? [0, 0]);
  }
}

function renderPeople() {
  const list = $("people");
  list.replaceChildren();
  for (const p of everyone()) {
    const member = p.self ? { ...p, display_name: `${$("display-name").value.trim() || "You"} (you)`,
      room_role: state.roomRole, muted: state.muted || state.mutedByHost, color: $("avatar-color").value } : p;
    const li = document.createElement("li");
    li.dataset.participant = member.participant_id;
    const dot = document.createElement("span");
    dot.className = "dot";
    dot.setAttribute("aria-hidden", "true");
    dot.style.setProperty("--avatar", colorFor(member));
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = member.display_name;
    li.append(dot, name);
    if (member.room_role === "host") li.append(badge("host"));
    if (member.muted) li.append(badge("muted"));
    const speaking = document.createElement("span");
    speaking.className = "visually-hidden speaking-label";
    li.append(speaking);
    if (!p.self) {
      const volume = document.createElement("input");
      volume.type = "range";
      volume.min = "0";
      volume.max = "150";
      volume.value = String(prefs()[`vol:${member.participant_id}`] ?? 100);
      volume.setAttribute("aria-label", `Volume of ${member.display_name}`);
      volume.addEventListener("input", () => {
        const mid = midOf(member.participant_id);
        if (mid) audio?.setVolume(mid, Number(volume.value) / 100);
        savePrefs({ [`vol:${member.participant_id}`]: Number(volume.value) });
      });
      li.append(volume);
      if (state.roomRole === "host") {
        const mute = document.createElement("button");
        mute.type = "button";
        mute.textContent = member.muted ? `Unmute ${member.display_name}` : `Mute ${member.display_name}`;
        mute.addEventListener("click", () => send({ type: "mute", participant_id: member.participant_id, muted: !member.muted }));
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "danger";
        remove.textContent = `Remove ${member.display_name}`;
        remove.addEventListener("click", () => {
          if (confirm(`Remove ${member.display_name} from this session? Their link will stop working.`)) {
            send({ type: "remove", participant_id: member.participant_id });
          }
        });
        li.append(mute, remove);
      }
    }
    list.append(li);
  }
  $("host-controls").hidden = state.roomRole !== "host";
}

function badge(text) {
  const b = document.createElement("span");
  b.className = "badge";
  b.textContent = text;
  return b;
}

function updateLevels() {
  if (!audio) return;
  const levels = audio.levels();
  const people = everyone();
  for (const li of $("people").children) {
    const pid = li.dataset.participant;
    const mid = pid === state.participantId ? null : midOf(pid);
    const level = pid === state.participantId ? (state.muted ? 0 : audio.micLevel()) : (levels[mid] ?? 0);
    const speaking = level > SPEAKING_LEVEL;
    if (li.classList.contains("speaking") !== speaking) {
      li.classList.toggle("speaking", speaking);
      li.querySelector(".speaking-label").textContent = speaking ? "speaking" : "";
    }
    const seat = people.findIndex((p) => p.participant_id === pid);
    if (scene && pid !== state.participantId) scene.setSeatHighlight(seat, Math.min(1, level * 8));
  }
}

// --- signaling ----------------------------------------------------------------------------

function send(message) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function sendKeys(blobs) {
  if (blobs.length) send({ type: "keys", keys: blobs.map((blob) => ({ to: blob.to, blob })) });
}

function memberForManager(m) {
  return { participant_id: m.participant_id, sender_id: m.sender_id, identity: m.identity };
}

async function newCodeRound(epoch) {
  // Membership changed: a new commit-then-reveal round; no code is shown until it completes.
  const cards = new Map([...state.members.values()].map((m) => [m.participant_id, m.identity]));
  codeRound = new SecurityCodeRound(roomId, epoch, state.participantId, identity.card, cards);
  state.securityCode = "";
  $("security-code").textContent = "checking…";
  send({ type: "code_commit", epoch, commitment: await codeRound.commitMessage() });
  await advanceCodeRound();
}

async function advanceCodeRound() {
  const round = codeRound;
  if (!round) return;
  if (round.readyToReveal) send({ type: "code_reveal", epoch: round.epoch, contribution: round.revealMessage() });
  const code = await round.code();
  if (code && round === codeRound) {
    state.securityCode = code;
    $("security-code").textContent = code;
  }
}

async function handle(msg) {
  switch (msg.type) {
    case "joined": {
      state.participantId = msg.participant_id;
      state.senderId = msg.sender_id;
      state.roomRole = msg.room_role;
      state.members = new Map(msg.members.map((m) => [m.participant_id, m]));
      manager = new SenderKeyManager(roomId, identity, msg.participant_id, msg.sender_id);
      manager.onSendKey = (key) => frameCrypto.setSendKey(key);
      manager.onReceiveKey = (key) => frameCrypto.addReceiveKey(key);
      manager.onRemoveSender = (senderId) => frameCrypto.removeSender(senderId);
      sendKeys(await manager.start(msg.members.map(memberForManager)));
      frameCrypto.setSendKey(manager.sendKey);
      await newCodeRound(msg.epoch);
      await negotiate(msg.ice_servers);
      state.phase = "in-room";
      document.documentElement.dataset.sessionState = "in-room";
      state.reconnects = 0;
      show("room");
      announce("room-status", state.members.size
        ? `You joined. ${state.members.size === 1 ? "One other person is" : `${state.members.size} others are`} here.`
        : "You joined. You are the first one here.");
      renderPeople();
      layoutSeats();
      break;
    }
    case "member_joined": {
      state.members.set(msg.member.participant_id, msg.member);
      sendKeys(await manager.memberJoined(memberForManager(msg.member)));
      await newCodeRound(msg.epoch);
      announce("room-status", `${msg.member.display_name} joined. The security code changed.`);
      renderPeople();
      layoutSeats();
      break;
    }
    case "member_left": {
      const who = state.members.get(msg.participant_id);
      state.members.delete(msg.participant_id);
      sendKeys(await manager.memberLeft(msg.participant_id));
      await newCodeRound(msg.epoch);
      if (who && msg.reason !== "replaced") announce("room-status", `${who.display_name} left.`);
      renderPeople();
      layoutSeats();
      break;
    }
    case "key":
      try {
        await manager.accept(msg.blob);
      } catch (err) {
        console.warn("a key from", msg.from, "did not verify:", err.message);
      }
      break;
    case "code_commit":
    case "code_reveal": {
      if (!codeRound || msg.epoch !== codeRound.epoch) break; // an earlier membership's round
      try {
        if (msg.type === "code_commit") codeRound.onCommit(msg.from, msg.commitment);
        else await codeRound.onReveal(msg.from, msg.contribution);
      } catch (err) {
        if (err instanceof CodeRoundError) {
          state.securityCode = "";
          $("security-code").textContent = "check failed: someone may be interfering. Leave and tell the host.";
          announce("room-status", "The security check failed. Someone may be interfering with this session.");
          break;
        }
        throw err;
      }
      await advanceCodeRound();
      break;
    }
    case "answer":
      await pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
      break;
    case "slots":
      state.slots = new Map(msg.slots.filter((s) => s.participant_id).map((s) => [s.mid, s.participant_id]));
      layoutSeats();
      break;
    case "muted": {
      if (msg.participant_id === state.participantId) {
        state.mutedByHost = msg.muted;
        announce("room-status", msg.muted ? "The host muted you. Others cannot hear you." : "The host unmuted you.");
      } else if (state.members.has(msg.participant_id)) {
        state.members.get(msg.participant_id).muted = msg.muted;
      }
      renderPeople();
      break;
    }
    case "ended":
      end(msg.reason === "removed" ? "The host removed you from this session."
        : msg.reason === "replaced" ? "You joined this session from another tab or device."
        : "The host ended the session. Thank you for coming.");
      break;
    case "error":
      if (!msg.fatal) {
        announce("room-status", msg.message);
      } else if (["token_used", "token_revoked", "token_expired", "invalid_token", "room_closed", "room_full"].includes(msg.code)) {
        end(msg.message.charAt(0).toUpperCase() + msg.message.slice(1) + ".");
      } else {
        console.warn("signaling error", msg.code, msg.message);
      }
      break;
    case "pong":
      break;
    default:
      break;
  }
}

function connect() {
  state.phase = state.participantId ? "reconnecting" : "joining";
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(`${proto}//${location.host}/ws/signal`);
  const socket = ws;
  socket.addEventListener("open", () => {
    const join = { type: "join", room_id: roomId, token, identity: identity.card, color: $("avatar-color").value };
    const name = $("display-name").value.trim();
    if (name) join.display_name = name;
    socket.send(JSON.stringify(join));
  });
  socket.addEventListener("message", (event) => {
    let msg;
    try {
      msg = JSON.parse(event.data);
    } catch {
      return;
    }
    messageChain = messageChain.then(() => handle(msg)).catch((err) => console.error("session:", err));
  });
  socket.addEventListener("close", () => {
    if (socket !== ws || wantClose || state.phase === "ended") return;
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  teardownMedia();
  state.phase = "reconnecting";
  const delay = Math.min(10000, 500 * 2 ** state.reconnects++);
  announce(state.participantId ? "room-status" : "lobby-status", "Connection lost. Reconnecting…");
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

// --- media ----------------------------------------------------------------------------------

function opusOnly(transceiver) {
  const codecs = RTCRtpReceiver.getCapabilities("audio").codecs.filter((c) => c.mimeType.toLowerCase() === "audio/opus");
  transceiver.setCodecPreferences(codecs);
}

async function negotiate(iceServers) {
  teardownMedia();
  // STUN/TURN from `joined` (TURN credentials expire; every join brings fresh ones).
  pc = new RTCPeerConnection(peerConnectionConfig({ iceServers: iceServersFrom(iceServers) }, frameCrypto.mode));
  const track = micStream.getAudioTracks()[0];
  track.enabled = !state.muted;
  const up = pc.addTransceiver(track, { direction: "sendonly" });
  opusOnly(up);
  frameCrypto.attachSender(up.sender);
  const downs = [];
  for (let i = 0; i < DOWNSTREAM_SLOTS; i++) {
    const t = pc.addTransceiver("audio", { direction: "recvonly" });
    opusOnly(t);
    downs.push(t);
  }
  pc.addEventListener("track", (event) => {
    // Decrypt before anything else sees a frame (Chromium takes the transform reliably here).
    frameCrypto.attachReceiver(event.receiver, event.transceiver.mid);
    audio.attach(event.transceiver.mid, event.track);
    const pid = state.slots.get(event.transceiver.mid);
    const vol = pid ? prefs()[`vol:${pid}`] : undefined;
    if (vol !== undefined) audio.setVolume(event.transceiver.mid, vol / 100);
    layoutSeats();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc?.connectionState === "failed") scheduleReconnect();
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  send({ type: "offer", sdp: pc.localDescription.sdp });
}

function teardownMedia() {
  if (pc) {
    pc.close();
    pc = null;
  }
  if (audio) for (const key of [...audio.voices.keys()]) audio.detach(key);
}

async function openMicrophone(deviceId) {
  micStream?.getTracks().forEach((t) => t.stop());
  micStream = await navigator.mediaDevices.getUserMedia({
    audio: { deviceId: deviceId ? { exact: deviceId } : undefined, echoCancellation: true,
      noiseSuppression: true, autoGainControl: true },
  });
  audio.watchMic(micStream.getAudioTracks()[0]);
  if (pc) {
    const sender = pc.getTransceivers()[0].sender;
    await sender.replaceTrack(micStream.getAudioTracks()[0]);
    micStream.getAudioTracks()[0].enabled = !state.muted;
  }
}

async function listMicrophones() {
  const select = $("mic-select");
  const current = select.value;
  const devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  select.replaceChildren(...devices.map((d, i) => new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
  if (current) select.value = current;
}

function setMuted(on) {
  state.muted = on;
  const track = micStream?.getAudioTracks()[0];
  if (track) track.enabled = !on;
  $("mute").setAttribute("aria-pressed", String(on));
  $("mute").firstChild.textContent = on ? "Unmute " : "Mute ";
  announce("room-status", on ? "You are muted." : "You are unmuted.");
  renderPeople();
}

async function measureQuality() {
  if (!pc) return;
  let rtt = null;
  let lost = 0;
  let received = 0;
  let jitter = 0;
  const packetsByMid = {};
  (await pc.getStats()).forEach((r) => {
    if (r.type === "candidate-pair" && r.nominated && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime;
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      lost += r.packetsLost || 0;
      received += r.packetsReceived || 0;
      jitter = Math.max(jitter, r.jitter || 0);
      if (r.mid) packetsByMid[r.mid] = r.packetsReceived || 0;
    }
  });
  await guardBypassedTransforms(packetsByMid);
  const lossRate = received + lost ? lost / (received + lost) : 0;
  const label = rtt === null ? "connecting…"
    : rtt > 0.4 || lossRate > 0.08 || jitter > 0.1 ? "poor"
    : rtt > 0.2 || lossRate > 0.02 || jitter > 0.05 ? "fair" : "good";
  $("quality-value").textContent = label + (rtt === null ? "" : ` (${Math.round(rtt * 1000)} ms round trip)`);
}

const bypassed = new Set();

// Defence in depth: if packets keep arriving on a slot but the decrypting transform has seen
// none of them, the browser is feeding ciphertext to the decoder (noise). Silence that slot.
async function guardBypassedTransforms(packetsByMid) {
  if (!frameCrypto) return;
  const perLabel = (await frameCrypto.stats()).perLabel || {};
  for (const [mid, packets] of Object.entries(packetsByMid)) {
    const seen = perLabel[mid] ? perLabel[mid].decrypted + perLabel[mid].failed : 0;
    if (packets > 100 && seen === 0 && !bypassed.has(mid)) {
      bypassed.add(mid);
      audio?.setVolume(mid, 0);
      console.warn(`slot ${mid}: frames bypass the decrypting transform; silenced`);
      announce("room-status", "One voice could not be decrypted in this browser and was silenced.");
    }
  }
}

function end(reason) {
  sessionStorage.removeItem(IN_CALL_KEY);
  document.documentElement.dataset.sessionState = "ended";
  state.phase = "ended";
  state.endedReason = reason;
  wantClose = true;
  clearTimeout(reconnectTimer);
  clearInterval(qualityTimer);
  clearInterval(levelTimer);
  try {
    ws?.close();
  } catch {
    /* already closed */
  }
  teardownMedia();
  micStream?.getTracks().forEach((t) => t.stop());
  $("ended-reason").textContent = reason;
  show("ended");
  $("ended-title").focus?.();
}

// --- start ----------------------------------------------------------------------------------

function refuse(panel) {
  state.phase = "refused";
  document.documentElement.dataset.sessionState = "refused";
  show(panel);
}

async function main() {
  window.havenSession = {
    state,
    remoteEnergy() {
      const levels = audio ? audio.levels() : {};
      const out = {};
      for (const [mid, pid] of state.slots) out[pid] = levels[mid] ?? 0;
      return out;
    },
    async cryptoStats() {
      return frameCrypto ? frameCrypto.stats() : null;
    },
    async rtpStats() {
      const out = [];
      if (pc) (await pc.getStats()).forEach((r) => {
        if (r.type === "inbound-rtp" || r.type === "outbound-rtp") {
          out.push({ type: r.type, mid: r.mid, ssrc: r.ssrc, packets: r.packetsReceived ?? r.packetsSent,
            lost: r.packetsLost, jitter: r.jitter, codec: r.codecId });
        }
      });
      return out;
    },
  };
  if (!token) return refuse("no-token");
  if (!encodedTransformSupport()) return refuse("unsupported");
  const saved = prefs();
  if (saved.name) $("display-name").value = saved.name;
  if (saved.color) $("avatar-color").value = saved.color;
  if (saved.audioOnly) $("audio-only").checked = true;
  state.audioOnly = $("audio-only").checked;
  root.classList.toggle("audio-only", state.audioOnly);
  setEnvironment(state.environment);
  loadScene();
  identity = await loadOrCreateIdentity();
  frameCrypto = new FrameCrypto();
  state.transformMode = frameCrypto.mode;
  audio = new SessionAudio();
  audio.ctx.addEventListener("statechange", () => {
    $("resume-audio").hidden = audio.ctx.state === "running";
  });
  try {
    await openMicrophone();
    await listMicrophones();
  } catch (err) {
    announce("lobby-status", "Haven could not use a microphone. Allow microphone access in your browser and reload this page. You can still listen.");
    micStream = new MediaStream([audio.ctx.createMediaStreamDestination().stream.getAudioTracks()[0]]);
  }
  if (sessionStorage.getItem(IN_CALL_KEY) === "1") {
    // This tab was in the call before a reload or a crash: go straight back in.
    announce("lobby-status", "Rejoining the session…");
    await join();
  }
  levelTimer = setInterval(() => {
    $("mic-level").value = Math.min(1, audio.micLevel() * 4);
    if (state.phase === "in-room") updateLevels();
  }, 100);
  document.documentElement.dataset.sessionState = "lobby";
}

$("mic-select").addEventListener("change", () => openMicrophone($("mic-select").value).catch(() => {
  announce("lobby-status", "That microphone could not be opened.");
}));

$("echo-test").addEventListener("click", async () => {
  await audio.resume();
  const on = $("echo-test").getAttribute("aria-pressed") !== "true";
  $("echo-test").setAttribute("aria-pressed", String(on));
  if (on) {
    audio.startEcho(6);
    announce("lobby-status", "Speak now: you will hear yourself for a few seconds.");
    setTimeout(() => $("echo-test").setAttribute("aria-pressed", "false"), 6000);
  } else {
    audio.stopEcho();
  }
});

$("audio-only").addEventListener("change", () => {
  state.audioOnly = $("audio-only").checked;
  root.classList.toggle("audio-only", state.audioOnly);
  savePrefs({ audioOnly: state.audioOnly });
  if (state.audioOnly) unloadScene();
  else loadScene().then(layoutSeats);
});

$("environment-select").addEventListener("change", (e) => setEnvironment(e.target.value));
$("room-environment").addEventListener("change", (e) => {
  setEnvironment(e.target.value);
  announce("room-status", `Your view is now the ${definitions[e.target.value].name.toLowerCase()}. Others keep their own view.`);
});

async function join() {
  await audio.resume().catch(() => {});
  if (audio.ctx.state !== "running") {
    // No user gesture yet (e.g. right after a reload): sound waits for one click.
    $("resume-audio").hidden = false;
  }
  audio.stopEcho();
  savePrefs({ name: $("display-name").value.trim(), color: $("avatar-color").value });
  sessionStorage.setItem(IN_CALL_KEY, "1");
  $("join").disabled = true;
  announce("lobby-status", "Joining…");
  document.documentElement.dataset.sessionState = "joining";
  connect();
  qualityTimer = setInterval(measureQuality, 2000);
}

$("lobby-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});

$("resume-audio").addEventListener("click", async () => {
  await audio.resume();
  $("resume-audio").hidden = audio.ctx.state === "running";
});

$("mute").addEventListener("click", () => setMuted(!state.muted));
$("spatial").addEventListener("click", () => {
  const on = $("spatial").getAttribute("aria-pressed") !== "true";
  $("spatial").setAttribute("aria-pressed", String(on));
  audio.setSpatial(on);
  announce("room-status", on ? "Voices come from where each person sits." : "Plain stereo.");
});
$("still").addEventListener("click", () => {
  const on = $("still").getAttribute("aria-pressed") !== "true";
  $("still").setAttribute("aria-pressed", String(on));
  savePrefs({ still: on });
  scene?.setReducedMotion(on);
});
$("enter-vr").addEventListener("click", () => scene?.enterVR().catch((err) => announce("room-status", `Could not enter VR: ${err.message}`)));
$("leave").addEventListener("click", () => {
  send({ type: "leave" });
  end("You left the session.");
});
$("end-session").addEventListener("click", () => {
  if (confirm("End this session for everyone?")) send({ type: "end" });
});

document.addEventListener("keydown", (event) => {
  if (state.phase !== "in-room" || event.ctrlKey || event.metaKey || event.altKey) return;
  const tag = event.target?.tagName;
  if (tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA") return;
  if (event.key === "m" || event.key === "M") {
    event.preventDefault();
    setMuted(!state.muted);
  }
});

window.addEventListener("pagehide", () => {
  // A reload or a closed tab: leave now so the others re-key at once (a reload rejoins).
  wantClose = true;
  send({ type: "leave" });
});

main().catch((err) => {
  console.error(err);
  announce("lobby-status", `Something went wrong while preparing the session: ${err.message}`);
});
