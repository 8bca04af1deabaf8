// The session page: a lobby card, then an end-to-end encrypted voice room inside the chosen
// place. The scene fills the screen; the dock, drawers and toasts float over it (./room/).
//
// Protocol: docs/protocol.md (join -> joined, keys/key, offer -> answer, slots, member_*).
// Encryption: ./e2ee/ (SFrame in an encoded-transform worker; identity key in IndexedDB,
// non-extractable). A browser without encoded transforms is refused: voice is never sent
// unencrypted. State for tests and diagnostics: window.havenSession.
//
// Scene contract (./scene/scene.js): the in-VR mute control dispatches
// CustomEvent("haven:xr-toggle-mute") on #scene; we toggle mute exactly as the M key does and
// tell the scene the new state with scene.setSelfMuted?.(muted).

import { CodeRoundError, SecurityCodeRound } from "./e2ee/code-round.js";
import { loadOrCreateIdentity } from "./e2ee/identity.js";
import { SenderKeyManager } from "./e2ee/manager.js";
import { FrameCrypto, encodedTransformSupport, peerConnectionConfig } from "./e2ee/transform.js";
import { Drawers } from "./room/drawers.js";
import { describeEvent, endedText, facilitatorActions, renderFacilitatorControls, renderQueue } from "./room/moderation.js";
import { renderPeople as drawPeople } from "./room/people.js";
import { RoomSafety } from "./room/safety.js";
import { audienceIn, SideRoomView, steppedOut } from "./room/side-room.js";
import { handleShortcut, renderShortcuts } from "./room/shortcuts.js";
import { Toasts } from "./room/toasts.js";
import { iceServersFrom } from "./ice.js";
import { seatPositions } from "./scene/seats.js";
import { SessionAudio } from "./session-audio.js";
import { askFirst } from "./site.js";

const $ = (id) => document.getElementById(id);
const root = $("session");
const roomId = root.dataset.roomId;
const definitions = JSON.parse($("environment-definitions").textContent);
const token = decodeURIComponent(location.hash.slice(1));
const DOWNSTREAM_SLOTS = 15;
const SPEAKING_LEVEL = 0.02;
const PREFS_KEY = "haven.session.prefs";
const IN_CALL_KEY = `haven.inCall.${roomId}`; // sessionStorage: rejoin by itself after a reload
const RESUME_WAIT_MS = 400; // a browser with no sound output never resumes: do not wait for it
const MIC_PROMPT_HINT_MS = 1500;

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
  handRaised: false,
  moderation: null, // a group meeting's moderation state (the server's `moderation` message)
  environment: root.dataset.environment,
  audioOnly: false,
  reconnects: 0,
  endedReason: null,
  joinedAt: null,
  quality: "checking",
};

let identity = null;
let ws = null;
let pc = null;
let manager = null;
let codeRound = null;
let frameCrypto = null;
let audio = null;
let micStream = null;
let micReady = null; // the first microphone request (the lobby never waits for it)
let scene = null;
let sceneModule = null;
let fallbackCanvas = null;
let messageChain = Promise.resolve();
let reconnectTimer = null;
let qualityTimer = null;
let levelTimer = null;
let clockTimer = null;
let wantClose = false;
const labelOfMid = new Map(); // receive transceiver mid -> its transform label

const toasts = new Toasts($("toasts"), $("room-status"), $("room-alert"));
const drawers = new Drawers();
const sideRoom = new SideRoomView({
  invite: $("side-room-invite"), inviteText: $("side-room-invite-text"), accept: $("side-room-accept"),
  decline: $("side-room-decline"), panel: $("side-room-panel"), panelText: $("side-room-panel-text"),
  back: $("side-room-back"), pending: $("side-room-pending"), pendingText: $("side-room-pending-text"),
  withdraw: $("side-room-withdraw"),
}, { send, say: (text, options) => say(text, options), nameOf, me: () => state.participantId });

function say(text, options) {
  toasts.show(text, options);
}

function lobbySay(text) {
  $("lobby-status").textContent = text;
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

function setPressed(id, on) {
  $(id).setAttribute("aria-pressed", String(!!on));
}

// --- the scene (optional: audio-only mode and browsers without WebGL skip it) ---------------

// html[data-scene-state]: "ready" (3D), "fallback" (2D picture), "off" (audio only), "error".
async function loadScene() {
  if (state.audioOnly) document.documentElement.dataset.sceneState = "off";
  if (state.audioOnly || scene || fallbackCanvas) return;
  try {
    sceneModule = await import("./scene/scene.js");
    if (state.audioOnly) return;
    if (!sceneModule.webglAvailable()) {
      await paintFallbackScene();
      return;
    }
    const still = prefs().still ?? sceneModule.prefersReducedMotion();
    scene = sceneModule.createScene($("scene"), definitions[state.environment], {
      seatCount: 1, reducedMotion: still, lowPower: !!prefs().lowPower,
      onLowPowerChange(on, reason) {
        setPressed("low-power", on);
        if (reason === "auto") say("Low-power mode is on: the scene was slow on this device.");
      },
    });
    setPressed("still", still);
    setPressed("low-power", scene.lowPower);
    scene.setSelfMuted?.(state.muted || state.mutedByHost);
    scene.xrSupported().then((ok) => { $("enter-vr").hidden = !ok; });
    document.documentElement.dataset.sceneState = "ready";
    layoutSeats();
  } catch (err) {
    console.warn("scene unavailable", err);
    scene = null;
    document.documentElement.dataset.sceneState = "error";
  }
}

// No WebGL: the same place as a still 2D picture (scene/fallback.js), repainted on resize.
async function paintFallbackScene() {
  const { paintFallback } = await import("./scene/fallback.js");
  fallbackCanvas = document.createElement("canvas");
  fallbackCanvas.className = "scene-fallback-canvas";
  fallbackCanvas.setAttribute("aria-hidden", "true");
  $("scene").append(fallbackCanvas);
  const paint = () => fallbackCanvas && paintFallback(fallbackCanvas, definitions[state.environment]);
  paint();
  fallbackCanvas.repaint = paint;
  window.addEventListener("resize", paint);
  document.documentElement.dataset.sceneState = "fallback";
}

function unloadScene() {
  document.documentElement.dataset.sceneState = "off";
  scene?.dispose();
  scene = null;
  fallbackCanvas?.remove();
  fallbackCanvas = null;
  $("enter-vr").hidden = true;
}

function setEnvironment(id) {
  if (!definitions[id]) return;
  state.environment = id;
  $("environment-select").value = id;
  for (const radio of document.querySelectorAll('input[name="room-environment"]')) radio.checked = radio.value === id;
  const def = definitions[id];
  $("room-place").textContent = def.name;
  $("scene").setAttribute("aria-label", `${def.name}: ${def.description}`);
  $("scene").style.setProperty("--scene-sky", def.sky.zenith);
  $("scene").style.setProperty("--scene-horizon", def.sky.horizon);
  scene?.setEnvironment(def);
  fallbackCanvas?.repaint();
  layoutSeats();
}

// --- people, seats and voices ---------------------------------------------------------------

function isGroup() {
  return state.moderation !== null;
}

function amFacilitator() {
  return isGroup() && state.moderation.facilitators.includes(state.participantId);
}

function nameOf(pid) {
  if (!pid) return "";
  if (pid === state.participantId) return "You";
  return state.members.get(pid)?.display_name ?? "Someone";
}

function inQueue(pid) {
  return !!state.moderation?.queue.some((q) => q.participant_id === pid);
}

function myName() {
  return $("display-name").value.trim() || "You";
}

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
      if (!p.self && i < seats.length) {
        const away = steppedOut(state.moderation, p.participant_id) ? " (stepped out)" : "";
        scene.placeAvatar(i, { color: colorFor(p), label: p.display_name + away,
          muted: !!(p.muted || p.self_muted), hand: inQueue(p.participant_id) });
      }
    });
    const holder = state.moderation?.piece_on ? state.moderation.holder : null;
    const holderSeat = holder ? people.findIndex((p) => p.participant_id === holder) : -1;
    scene.setTalkingPiece?.(holderSeat >= 0 && holderSeat < seats.length ? holderSeat : null);
  }
  if (audio) {
    const byMid = new Map();
    people.forEach((p, i) => {
      const mid = p.self ? null : midOf(p.participant_id);
      if (mid && seats[i]) byMid.set(mid, seats[i]);
    });
    audio.placeSeats(seats[mySeat] ?? seats[0], byMid, def.seating.center ?? [0, 0]);
  }
}

function hostActions(p) {
  if (isGroup()) {
    return amFacilitator() ? [...facilitatorActions(p, state.moderation, { send, confirm: (q, yes) => askFirst(q, yes, "Cancel") }),
      ...sideRoom.actionsFor(p, state.moderation, true), ...safety.personActions(p)] : [];
  }
  if (p.self || state.roomRole !== "host") return [];
  return [
    { id: "mute", label: p.muted ? `Unmute ${p.display_name}` : `Mute ${p.display_name}`,
      run: () => send({ type: "mute", participant_id: p.participant_id, muted: !p.muted }) },
    { id: "remove", label: `Remove ${p.display_name}`, danger: true,
      run: async () => {
        if (await askFirst(`Remove ${p.display_name} from this session? Their link will stop working.`, "Remove", "Keep them")) {
          send({ type: "remove", participant_id: p.participant_id });
        }
      } },
  ];
}

function renderPeople() {
  const people = everyone().map((p) => (p.self
    ? { ...p, display_name: `${myName()} (you)`, room_role: roleLabel(p), muted: state.muted || state.mutedByHost,
      hand: state.handRaised, color: $("avatar-color").value }
    : { ...p, room_role: roleLabel(p), muted: !!(p.muted || p.self_muted), hand: inQueue(p.participant_id), color: colorFor(p),
      steppedOut: steppedOut(state.moderation, p.participant_id) }));
  drawPeople($("people"), people, {
    volumeOf: (p) => prefs()[`vol:${p.participant_id}`] ?? 100,
    onVolume: (p, value) => {
      const mid = midOf(p.participant_id);
      if (mid) audio?.setVolume(mid, value / 100);
      savePrefs({ [`vol:${p.participant_id}`]: value });
    },
    actionsFor: hostActions,
  });
  $("host-controls").hidden = isGroup() ? !amFacilitator() : state.roomRole !== "host";
  renderGroup();
  safety.update();
  $("people-count").textContent = String(people.length);
  $("people-count-text").textContent = `, ${people.length} here`;
}

function roleLabel(p) {
  if (!isGroup()) return p.self ? state.roomRole : p.room_role;
  return state.moderation.facilitators.includes(p.participant_id) ? "facilitator" : "member";
}

let pieceTimer = null;
let pieceWarned = false;

function renderGroup() {
  const mod = state.moderation;
  if (!mod) return;
  const fac = amFacilitator();
  renderQueue($("hand-queue-list"), $("hand-queue"), mod, { facilitator: fac, nameOf, send });
  $("host-title").textContent = "You are a facilitator";
  $("end-session").hidden = true; // a group meeting is ended from its meeting page
  if (fac) {
    renderFacilitatorControls($("group-controls"), mod, { send, share: () => Number($("share-time").value) || null });
  }
  $("group-facilitator").hidden = !fac;
  // a pause: members see a calm card (the SFU holds their voices); facilitators keep the room
  const away = steppedOut(mod, state.participantId); // in a side room: the group's rules wait
  $("pause-card").hidden = !mod.paused || fac || away;
  const silenced = !fac && !away && (mod.muted.includes(state.participantId)
    || (mod.piece_on && mod.holder !== state.participantId));
  $("ask-to-speak").hidden = !silenced || inQueue(state.participantId);
  const iHold = mod.piece_on && mod.holder === state.participantId;
  $("piece-status").hidden = !mod.piece_on;
  $("piece-back").hidden = !iHold || fac;
  $("piece-status-text").textContent = !mod.piece_on ? ""
    : iHold ? "You hold the talking piece"
      : mod.holder ? `${nameOf(mod.holder)} holds the talking piece` : "The facilitators hold the talking piece";
  clearInterval(pieceTimer);
  $("piece-time").textContent = "";
  $("piece-status").classList.remove("ending");
  if (mod.holder && mod.share_remaining !== null) {
    const ends = performance.now() + mod.share_remaining * 1000;
    const tick = () => {
      const left = Math.max(0, Math.round((ends - performance.now()) / 1000));
      $("piece-time").textContent = ` · ${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")} left`;
      const ending = left <= 30;
      $("piece-status").classList.toggle("ending", ending);
      if (ending && iHold && !pieceWarned) {
        pieceWarned = true;
        say("About 30 seconds left with the talking piece.");
      }
    };
    tick();
    pieceTimer = setInterval(tick, 1000);
  }
  if (!iHold) pieceWarned = false;
}

function applyModeration(msg) {
  const before = state.moderation;
  state.moderation = msg.state;
  const wasMuted = state.mutedByHost;
  state.mutedByHost = msg.state.muted.includes(state.participantId);
  setPressed("mute", state.muted || state.mutedByHost);
  $("mute").querySelector(".dock-label").textContent = state.mutedByHost ? "Muted by facilitator"
    : state.muted ? "Muted" : "Mute";
  state.handRaised = inQueue(state.participantId);
  setPressed("hand", state.handRaised);
  $("hand").hidden = false;
  if (!before) {
    renderShortcuts($("shortcut-list"), () => true);
    $("hand-queue").before($("host-controls")); // a facilitator's meeting controls come first
  }
  if (wasMuted !== state.mutedByHost) {
    const track = micStream?.getAudioTracks()[0];
    if (track) track.enabled = !(state.muted || state.mutedByHost);
    scene?.setSelfMuted?.(state.muted || state.mutedByHost);
  }
  const said = describeEvent(msg.event, state.participantId, nameOf);
  if (said.text && msg.event.by !== state.participantId) say(said.text, { assertive: !!said.assertive });
  renderPeople();
  layoutSeats();
}

function updateLevels() {
  if (!audio) return;
  const levels = audio.levels();
  const people = everyone();
  for (const li of $("people").children) {
    const pid = li.dataset.participant;
    const mine = pid === state.participantId;
    const level = mine ? (state.muted ? 0 : audio.micLevel()) : (levels[midOf(pid)] ?? 0);
    const speaking = level > SPEAKING_LEVEL;
    if (li.classList.contains("speaking") !== speaking) {
      li.classList.toggle("speaking", speaking);
      li.querySelector(".speaking-label").textContent = speaking ? "speaking" : "";
    }
    const seat = people.findIndex((p) => p.participant_id === pid);
    if (scene && !mine) scene.setSeatHighlight(seat, Math.min(1, level * 8));
  }
}

// --- signaling ----------------------------------------------------------------------------

function send(message) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(message));
  return true;
}

// Safety in the room (room/safety.js): the private alert, the facilitator's panel, the notes indicator.
const safety = new RoomSafety({
  send,
  context: () => ({ group: isGroup(), facilitator: amFacilitator(), roomRole: state.roomRole }),
  openPerson: (pid) => {
    drawers.open("drawer-people", $("people-button"));
    const more = document.querySelector(`#people li[data-participant="${CSS.escape(pid)}"] details.person-more`);
    if (more) {
      more.open = true;
      more.querySelector("summary").focus();
    }
  },
});

// An alert's next step can be a side room with that member (when one may be opened now).
RoomSafety.actions.push({
  id: "side-room",
  label: (a) => `Invite ${a.pseudonym} to a side room`,
  applies: (a) => Boolean(a.participant_id) && isGroup() && sideRoom.actionsFor(
    { participant_id: a.participant_id, display_name: a.pseudonym, self: false },
    state.moderation, amFacilitator()).length > 0,
  run: (a) => send({ type: "side_room_invite", participant_id: a.participant_id }),
});

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

function enterRoom() {
  const wasReconnecting = state.joinedAt !== null;
  state.phase = "in-room";
  document.documentElement.dataset.sessionState = "in-room";
  state.reconnects = 0;
  show("room");
  if (!wasReconnecting) {
    state.joinedAt = Date.now();
    clockTimer = setInterval(tickClock, 1000);
    tickClock();
    $("mute").focus({ preventScroll: true });
  }
  const others = state.members.size;
  say(wasReconnecting ? "Reconnected."
    : others ? `You joined. ${others === 1 ? "One other person is" : `${others} others are`} here.`
      : "You joined. You are the first one here.");
}

function tickClock() {
  const s = Math.floor((Date.now() - state.joinedAt) / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  $("room-clock").textContent = h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

async function handle(msg) {
  if (safety.handle(msg)) return;
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
      if (state.muted) send({ type: "self_mute", muted: true }); // others see it, after a reconnect too
      enterRoom();
      renderPeople();
      layoutSeats();
      break;
    }
    case "member_joined": {
      state.members.set(msg.member.participant_id, msg.member);
      sendKeys(await manager.memberJoined(memberForManager(msg.member)));
      await newCodeRound(msg.epoch);
      say(`${msg.member.display_name} joined. The security code changed.`);
      renderPeople();
      layoutSeats();
      break;
    }
    case "member_left": {
      const who = state.members.get(msg.participant_id);
      state.members.delete(msg.participant_id);
      sendKeys(await manager.memberLeft(msg.participant_id));
      await newCodeRound(msg.epoch);
      if (who && msg.reason !== "replaced") say(`${who.display_name} left. The security code changed.`);
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
          say("The security check failed. Someone may be interfering with this session.", { assertive: true });
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
      applySavedVolumes();
      layoutSeats();
      break;
    case "muted": {
      if (msg.participant_id === state.participantId) {
        state.mutedByHost = msg.muted;
        say(msg.muted ? "The host muted you. Others cannot hear you." : "The host unmuted you.", { assertive: msg.muted });
        scene?.setSelfMuted?.(state.muted || state.mutedByHost);
      } else if (state.members.has(msg.participant_id)) {
        state.members.get(msg.participant_id).muted = msg.muted;
        layoutSeats();
      }
      renderPeople();
      break;
    }
    case "moderation":
      // a group meeting: our key goes only to those in our space (a side room has its own)
      sendKeys(await manager.setAudience(audienceIn(msg.state, state.participantId, state.members.keys())));
      applyModeration(msg);
      sideRoom.render(msg.state);
      break;
    case "side_room":
      sideRoom.handle(msg);
      renderPeople();
      break;
    case "self_mute": {
      const m = state.members.get(msg.participant_id);
      if (m) {
        m.self_muted = msg.muted;
        renderPeople();
        layoutSeats();
      }
      break;
    }
    case "notice":
      say(msg.message, { assertive: msg.code === "no_facilitator" });
      break;
    case "ended":
      if (isGroup() && endedText(msg.reason)) {
        end(endedText(msg.reason));
        break;
      }
      end(msg.reason === "removed" ? "The host removed you from this session."
        : msg.reason === "replaced" ? "You joined this session from another tab or device."
          : "The host ended the session. Thank you for coming.");
      break;
    case "error":
      if (!msg.fatal) {
        say(msg.message);
      } else if (["token_used", "token_revoked", "token_expired", "invalid_token", "room_closed", "room_full",
        "locked", "banned", "not_member"].includes(msg.code)) {
        end(msg.message.charAt(0).toUpperCase() + msg.message.slice(1) + ".");
      } else {
        console.warn("signaling error", msg.code, msg.message);
      }
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
    if (socket !== ws) return; // a replaced connection's last words ("ended: replaced") are not ours
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
  const old = ws;
  ws = null; // its messages are ignored from now on; the new join replaces it on the server
  try {
    old?.close();
  } catch {
    /* already closed */
  }
  state.phase = "reconnecting";
  const delay = Math.min(10000, 500 * 2 ** state.reconnects++);
  if (state.participantId) say("Connection lost. Reconnecting…");
  else lobbySay("Connection lost. Reconnecting…");
  setQuality("connecting", "reconnecting…");
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

// --- media ----------------------------------------------------------------------------------

function opusOnly(transceiver) {
  try {
    const codecs = RTCRtpReceiver.getCapabilities?.("audio")?.codecs
      .filter((c) => c.mimeType.toLowerCase() === "audio/opus");
    if (codecs?.length) transceiver.setCodecPreferences(codecs);
  } catch (err) {
    console.warn("codec preferences not applied:", err.message); // the SFU answers Opus anyway
  }
}

function applySavedVolumes() {
  if (!audio) return;
  for (const [mid, pid] of state.slots) {
    const vol = prefs()[`vol:${pid}`];
    if (vol !== undefined) audio.setVolume(mid, vol / 100);
  }
}

async function negotiate(iceServers) {
  teardownMedia();
  // STUN/TURN from `joined` (TURN credentials expire; every join brings fresh ones).
  pc = new RTCPeerConnection(peerConnectionConfig({ iceServers: iceServersFrom(iceServers) }, frameCrypto.mode));
  const track = micStream.getAudioTracks()[0];
  track.enabled = !(state.muted || state.mutedByHost);
  const up = pc.addTransceiver(track, { direction: "sendonly" });
  opusOnly(up);
  frameCrypto.attachSender(up.sender);
  const downs = [];
  for (let i = 0; i < DOWNSTREAM_SLOTS; i++) {
    const t = pc.addTransceiver("audio", { direction: "recvonly" });
    opusOnly(t);
    // Decrypt before anything else sees a frame. Attached here, synchronously where the
    // transceiver is made: Chromium skips a script transform attached after the answer.
    frameCrypto.attachReceiver(t.receiver, `slot-${i + 1}`);
    downs.push(t);
  }
  pc.addEventListener("track", (event) => {
    audio.attach(event.transceiver.mid, event.track);
    applySavedVolumes();
    layoutSeats();
  });
  pc.addEventListener("connectionstatechange", () => {
    if (pc?.connectionState === "failed") scheduleReconnect();
  });
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  labelOfMid.clear();
  downs.forEach((t, i) => labelOfMid.set(t.mid, `slot-${i + 1}`));
  send({ type: "offer", sdp: pc.localDescription.sdp });
}

function teardownMedia() {
  if (pc) {
    pc.close();
    pc = null;
  }
  if (audio) for (const key of [...audio.voices.keys()]) audio.detach(key);
}

function silentTrack() {
  return audio.ctx.createMediaStreamDestination().stream.getAudioTracks()[0];
}

async function openMicrophone(deviceId) {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { deviceId: deviceId ? { exact: deviceId } : undefined, echoCancellation: true,
      noiseSuppression: true, autoGainControl: true },
  });
  micStream?.getTracks().forEach((t) => t.stop());
  micStream = stream;
  const track = stream.getAudioTracks()[0];
  audio.watchMic(track);
  track.enabled = !(state.muted || state.mutedByHost);
  if (pc) await pc.getTransceivers()[0].sender.replaceTrack(track);
}

async function listMicrophones() {
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  } catch {
    return;
  }
  const current = micStream?.getAudioTracks()[0]?.getSettings?.().deviceId || $("mic-select").value;
  for (const select of [$("mic-select"), $("room-mic-select")]) {
    // Before permission some browsers report devices without labels (or without ids).
    const options = devices.map((d, i) => new Option(d.label || `Microphone ${i + 1}`, d.deviceId));
    select.replaceChildren(...(options.length ? options : [new Option("Default microphone", "")]));
    if (current && devices.some((d) => d.deviceId === current)) select.value = current;
  }
}

function chooseMicrophone(deviceId) {
  openMicrophone(deviceId).then(listMicrophones).catch(() => {
    const text = "That microphone could not be opened.";
    if (state.phase === "in-room") say(text);
    else lobbySay(text);
  });
}

function setMuted(on) {
  state.muted = on;
  const track = micStream?.getAudioTracks()[0];
  if (track) track.enabled = !(on || state.mutedByHost);
  setPressed("mute", on);
  $("mute").querySelector(".dock-label").textContent = on ? "Muted" : "Mute";
  send({ type: "self_mute", muted: on }); // everyone sees it (and the server stops forwarding me)
  const by = isGroup() ? "a facilitator" : "the host";
  say(on ? "You are muted." : state.mutedByHost ? `You unmuted, but ${by} still has you muted. You can ask to speak.` : "You are unmuted.");
  scene?.setSelfMuted?.(on || state.mutedByHost);
  renderPeople();
}

function toggleMute() {
  if (state.phase === "in-room") setMuted(!state.muted);
}

function setQuality(kind, text) {
  if (state.quality === kind && $("quality-value").textContent === text) return;
  state.quality = kind;
  $("quality").dataset.quality = kind;
  $("quality-value").textContent = text;
}

async function measureQuality() {
  if (!pc) return;
  let rtt = null;
  let lost = 0;
  let received = 0;
  let jitter = 0;
  const packetsByMid = {};
  (await pc.getStats()).forEach((r) => {
    if (r.type === "candidate-pair" && (r.nominated || r.selected) && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime;
    if (r.type === "inbound-rtp" && r.kind === "audio") {
      lost += r.packetsLost || 0;
      received += r.packetsReceived || 0;
      jitter = Math.max(jitter, r.jitter || 0);
      if (r.mid) packetsByMid[r.mid] = r.packetsReceived || 0;
    }
  });
  await guardBypassedTransforms(packetsByMid);
  const lossRate = received + lost ? lost / (received + lost) : 0;
  const label = rtt === null ? (pc.connectionState === "connected" ? "good" : "connecting")
    : rtt > 0.4 || lossRate > 0.08 || jitter > 0.1 ? "poor"
      : rtt > 0.2 || lossRate > 0.02 || jitter > 0.05 ? "fair" : "good";
  setQuality(label, label === "connecting" ? "connecting…" : label + (rtt === null ? "" : ` (${Math.round(rtt * 1000)} ms)`));
}

const bypassed = new Set();

// Defence in depth: if packets keep arriving on a slot but the decrypting transform has seen
// none of them, the browser is feeding ciphertext to the decoder (noise). Silence that slot.
async function guardBypassedTransforms(packetsByMid) {
  if (!frameCrypto) return;
  const perLabel = (await frameCrypto.stats()).perLabel || {};
  for (const [mid, packets] of Object.entries(packetsByMid)) {
    const seen = perLabel[labelOfMid.get(mid)];
    const count = seen ? seen.decrypted + seen.failed : 0;
    if (packets > 100 && count === 0 && !bypassed.has(mid)) {
      bypassed.add(mid);
      audio?.setVolume(mid, 0);
      console.warn(`slot ${mid}: frames bypass the decrypting transform; silenced`);
      say("One voice could not be decrypted in this browser and was silenced.");
    }
  }
}

function end(reason) {
  sessionStorage.removeItem(IN_CALL_KEY);
  document.documentElement.dataset.sessionState = "ended";
  state.phase = "ended";
  state.endedReason = reason;
  safety.leave();
  wantClose = true;
  clearTimeout(reconnectTimer);
  for (const t of [qualityTimer, levelTimer, clockTimer]) clearInterval(t);
  try {
    ws?.close();
  } catch {
    /* already closed */
  }
  drawers.close({ restoreFocus: false });
  scene?.exitVR?.().catch?.(() => {});
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

function startMicrophone() {
  const hint = setTimeout(() => {
    if (!micStream) lobbySay("Waiting for permission to use your microphone. Your browser may be asking you.");
  }, MIC_PROMPT_HINT_MS);
  micReady = openMicrophone()
    .then(() => {
      if ($("lobby-status").textContent.startsWith("Waiting for permission")) lobbySay("");
      return true;
    })
    .catch(() => {
      lobbySay("Haven could not use a microphone. Allow microphone access in your browser and reload this page. You can still listen.");
      return false;
    })
    .finally(() => {
      clearTimeout(hint);
      return listMicrophones();
    });
}

async function main() {
  window.havenSession = {
    state,
    toasts: toasts.history,
    safety,
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
    get scene() {
      return scene;
    },
  };
  if (!token) return refuse("no-token");
  if (!encodedTransformSupport()) return refuse("unsupported");
  const saved = prefs();
  if (saved.name) $("display-name").value = saved.name;
  if (saved.color) $("avatar-color").value = saved.color;
  if (saved.audioOnly) $("audio-only").checked = true;
  if (saved.spatial === false) setPressed("spatial", false);
  state.audioOnly = $("audio-only").checked;
  root.classList.toggle("audio-only", state.audioOnly);
  setEnvironment(state.environment);
  loadScene();
  renderShortcuts($("shortcut-list"), (what) => what !== "hand" || !$("hand").hidden);
  identity = await loadOrCreateIdentity();
  frameCrypto = new FrameCrypto();
  state.transformMode = frameCrypto.mode;
  audio = new SessionAudio();
  if (saved.spatial === false) audio.setSpatial(false);
  audio.ctx.addEventListener("statechange", () => {
    $("resume-audio").hidden = audio.ctx.state === "running" || state.phase === "lobby";
  });
  await listMicrophones(); // devices known before permission (often unlabelled)
  startMicrophone(); // the lobby works while the browser asks for permission
  levelTimer = setInterval(() => {
    $("mic-level").value = Math.min(1, audio.micLevel() * 4);
    if (state.phase === "in-room") updateLevels();
  }, 100);
  document.documentElement.dataset.sessionState = "lobby";
  if (sessionStorage.getItem(IN_CALL_KEY) === "1") {
    // This tab was in the call before a reload or a crash: go straight back in.
    lobbySay("Rejoining the session…");
    await join();
  }
}

async function resumeSound() {
  // resume() never settles in a browser without a sound output: wait briefly, then go on.
  await Promise.race([audio.resume().catch(() => {}), new Promise((r) => setTimeout(r, RESUME_WAIT_MS))]);
  return audio.ctx.state === "running";
}

async function join() {
  if (state.phase !== "lobby" || !audio) return;
  state.phase = "joining";
  $("join").disabled = true;
  document.documentElement.dataset.sessionState = "joining";
  lobbySay("Joining…");
  const sound = await resumeSound();
  $("resume-audio").hidden = sound; // no user gesture yet (after a reload): sound waits for a click
  audio.stopEcho();
  if (!micStream) {
    const ok = await Promise.race([micReady, new Promise((r) => setTimeout(() => r(null), 8000))]);
    if (!micStream) {
      // No microphone (refused, missing or still being asked): join to listen; a microphone
      // granted later replaces the silent track.
      micStream = new MediaStream([silentTrack()]);
      if (ok === null) lobbySay("Joining without a microphone for now…");
    }
  }
  savePrefs({ name: $("display-name").value.trim(), color: $("avatar-color").value });
  sessionStorage.setItem(IN_CALL_KEY, "1");
  connect();
  qualityTimer = setInterval(measureQuality, 2000);
}

// --- controls -------------------------------------------------------------------------------

$("mic-select").addEventListener("change", () => chooseMicrophone($("mic-select").value));
$("room-mic-select").addEventListener("change", () => chooseMicrophone($("room-mic-select").value));

$("echo-test").addEventListener("click", async () => {
  await resumeSound();
  const on = $("echo-test").getAttribute("aria-pressed") !== "true";
  setPressed("echo-test", on);
  if (on) {
    audio.startEcho(6);
    lobbySay("Speak now: you will hear yourself for a few seconds.");
    setTimeout(() => setPressed("echo-test", false), 6000);
  } else {
    audio.stopEcho();
  }
});

$("audio-only").addEventListener("change", () => {
  state.audioOnly = $("audio-only").checked;
  root.classList.toggle("audio-only", state.audioOnly);
  savePrefs({ audioOnly: state.audioOnly });
  if (state.audioOnly) unloadScene();
  else loadScene();
});

$("environment-select").addEventListener("change", (e) => setEnvironment(e.target.value));
for (const radio of document.querySelectorAll('input[name="room-environment"]')) {
  radio.addEventListener("change", () => {
    if (!radio.checked) return;
    setEnvironment(radio.value);
    say(`Your view is now the ${definitions[radio.value].name.toLowerCase()}. Others keep their own view.`);
  });
}

$("lobby-form").addEventListener("submit", (event) => {
  event.preventDefault();
  join();
});

$("resume-audio").addEventListener("click", async () => {
  await resumeSound();
  $("resume-audio").hidden = audio.ctx.state === "running";
  if (audio.ctx.state !== "running") say("This device did not start its sound. Check its sound output.");
});

$("mute").addEventListener("click", toggleMute);
$("hand").addEventListener("click", () => {
  if (state.phase === "in-room" && isGroup()) send({ type: "hand", raised: !state.handRaised });
});
$("piece-back").addEventListener("click", () => send({ type: "piece_return" }));
$("ask-to-speak").addEventListener("click", () => {
  send({ type: "ask_to_speak" });
  say("You asked to speak. Your hand is raised.");
});
// The in-VR mute control (scene module) asks for exactly what the M key does.
$("scene").addEventListener("haven:xr-toggle-mute", toggleMute);

$("spatial").addEventListener("click", () => {
  const on = $("spatial").getAttribute("aria-pressed") !== "true";
  setPressed("spatial", on);
  audio.setSpatial(on);
  savePrefs({ spatial: on });
  say(on ? "Voices come from where each person sits." : "Plain stereo.");
});
$("still").addEventListener("click", () => {
  const on = $("still").getAttribute("aria-pressed") !== "true";
  setPressed("still", on);
  savePrefs({ still: on });
  scene?.setReducedMotion(on);
});
$("low-power").addEventListener("click", () => {
  const on = $("low-power").getAttribute("aria-pressed") !== "true";
  setPressed("low-power", on);
  savePrefs({ lowPower: on });
  scene?.setLowPower(on);
});
$("enter-vr").addEventListener("click", () => scene?.enterVR().catch((err) => say(`Could not enter VR: ${err.message}`)));
$("leave").addEventListener("click", () => {
  send({ type: "leave" });
  end("You left the session.");
});
$("end-session").addEventListener("click", async () => {
  if (await askFirst("End this session for everyone? The room closes and cannot be reopened.", "End the session", "Go back")) {
    send({ type: "end" });
  }
});

// The drawers and the "More" menu.
drawers.add($("drawer-people"), $("people-button"));
drawers.add($("drawer-place"), $("place-button"));
for (const id of ["drawer-security", "drawer-settings", "drawer-help"]) drawers.add($(id));
drawers.onChange = (id) => {
  root.dataset.drawer = id || "";
};

function setMenu(open) {
  $("more-menu").hidden = !open;
  $("more-button").setAttribute("aria-expanded", String(open));
  if (open) $("more-menu").querySelector("button").focus();
}
$("more-button").addEventListener("click", () => setMenu($("more-menu").hidden));
for (const item of $("more-menu").querySelectorAll("button[data-drawer]")) {
  item.addEventListener("click", () => {
    setMenu(false);
    drawers.open(item.dataset.drawer, $("more-button"));
  });
}
$("more-menu").addEventListener("keydown", (event) => {
  const items = [...$("more-menu").querySelectorAll("button")];
  const i = items.indexOf(document.activeElement);
  if (event.key === "Escape") {
    event.preventDefault();
    setMenu(false);
    $("more-button").focus();
  } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    items[(i + (event.key === "ArrowDown" ? 1 : items.length - 1)) % items.length].focus();
  }
});
document.addEventListener("click", (event) => {
  if (!$("more-menu").hidden && !event.target.closest(".more")) setMenu(false);
});

document.addEventListener("keydown", (event) => {
  if (state.phase !== "in-room") return;
  const openDrawer = (id) => () => {
    setMenu(false);
    drawers.toggle(id, id === "drawer-people" ? $("people-button") : id === "drawer-place" ? $("place-button") : $("more-button"));
  };
  handleShortcut(event, {
    mute: () => toggleMute(),
    hand: () => ($("hand").hidden ? false : $("hand").click()),
    people: openDrawer("drawer-people"),
    place: openDrawer("drawer-place"),
    security: openDrawer("drawer-security"),
    settings: openDrawer("drawer-settings"),
    help: openDrawer("drawer-help"),
  });
});

window.addEventListener("pagehide", () => {
  // A reload or a closed tab: leave now so the others re-key at once (a reload rejoins).
  wantClose = true;
  send({ type: "leave" });
});

main().catch((err) => {
  console.error(err);
  lobbySay(`Something went wrong while preparing the session: ${err.message}`);
});
