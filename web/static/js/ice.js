// The STUN/TURN servers the server handed out in `joined` (docs/protocol.md), as the
// RTCIceServer list for new RTCPeerConnection({iceServers}). TURN entries carry a short-lived
// credential for this participant only. Anything malformed is left out rather than letting
// the peer connection throw: the call still works wherever direct paths exist.

const URL_RE = /^(stun|turns?):[^\s]{1,300}$/;

export function iceServersFrom(list) {
  if (!Array.isArray(list)) return [];
  const out = [];
  for (const entry of list.slice(0, 8)) {
    if (!entry || typeof entry !== "object") continue;
    const urls = (Array.isArray(entry.urls) ? entry.urls : [entry.urls]).filter(
      (u) => typeof u === "string" && URL_RE.test(u));
    if (!urls.length) continue;
    const server = { urls };
    if (typeof entry.username === "string" && typeof entry.credential === "string") {
      server.username = entry.username;
      server.credential = entry.credential;
    } else if (urls.some((u) => !u.startsWith("stun:"))) {
      continue; // TURN without credentials cannot work
    }
    out.push(server);
  }
  return out;
}
