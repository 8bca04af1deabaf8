// The session's sound: every remote voice through its own chain
//   remote track -> analyser (speaking, energy) -> gain (per-person volume) -> panner -> out
// placed at that person's seat (HRTF), or plain stereo when spatial sound is off. Voices are
// only ever mixed here, on this device: the server forwards encrypted frames it cannot decode.

export class SessionAudio {
  constructor() {
    this.ctx = new AudioContext({ latencyHint: "interactive" });
    this.master = this.ctx.createGain();
    this.master.connect(this.ctx.destination);
    this.voices = new Map(); // key (mid) -> voice
    this.spatial = true;
    this.mic = null;
  }

  async resume() {
    if (this.ctx.state !== "running") await this.ctx.resume();
  }

  /** A remote voice arrived on receive transceiver `key`. */
  attach(key, track) {
    this.detach(key);
    const stream = new MediaStream([track]);
    // Chromium only feeds a remote WebRTC stream into Web Audio while a media element plays it.
    const sink = new Audio();
    sink.muted = true;
    sink.srcObject = stream;
    sink.play().catch(() => {});
    const source = this.ctx.createMediaStreamSource(stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 1024;
    const gain = this.ctx.createGain();
    const panner = new PannerNode(this.ctx, {
      panningModel: "HRTF", distanceModel: "inverse", refDistance: 1.5, rolloffFactor: 0.6,
    });
    const stereo = this.ctx.createStereoPanner();
    source.connect(analyser);
    analyser.connect(gain);
    const voice = { key, track, sink, source, analyser, gain, panner, stereo, seat: null,
      data: new Float32Array(analyser.fftSize), level: 0 };
    this.voices.set(key, voice);
    this.#route(voice);
    return voice;
  }

  detach(key) {
    const v = this.voices.get(key);
    if (!v) return;
    for (const node of [v.source, v.analyser, v.gain, v.panner, v.stereo]) node.disconnect();
    v.sink.srcObject = null;
    this.voices.delete(key);
  }

  #route(v) {
    v.gain.disconnect();
    v.panner.disconnect();
    v.stereo.disconnect();
    if (this.spatial) {
      v.gain.connect(v.panner);
      v.panner.connect(this.master);
    } else {
      v.gain.connect(v.stereo);
      v.stereo.connect(this.master);
    }
  }

  setSpatial(on) {
    this.spatial = on;
    for (const v of this.voices.values()) this.#route(v);
  }

  setVolume(key, value) {
    const v = this.voices.get(key);
    if (v) v.gain.gain.setTargetAtTime(value, this.ctx.currentTime, 0.05);
  }

  /** Put the listener at `me` facing the circle's centre, and each voice at its seat. */
  placeSeats(me, seatsByKey, center = [0, 0]) {
    const l = this.ctx.listener;
    const dx = center[0] - me.x;
    const dz = center[1] - me.z;
    const len = Math.hypot(dx, dz) || 1;
    if (l.positionX) {
      l.positionX.value = me.x; l.positionY.value = me.y; l.positionZ.value = me.z;
      l.forwardX.value = dx / len; l.forwardY.value = 0; l.forwardZ.value = dz / len;
      l.upX.value = 0; l.upY.value = 1; l.upZ.value = 0;
    } else {
      l.setPosition(me.x, me.y, me.z);
      l.setOrientation(dx / len, 0, dz / len, 0, 1, 0);
    }
    for (const [key, seat] of seatsByKey) {
      const v = this.voices.get(key);
      if (!v || !seat) continue;
      v.seat = seat;
      v.panner.positionX.value = seat.x;
      v.panner.positionY.value = seat.y;
      v.panner.positionZ.value = seat.z;
      // plain stereo: left/right from the angle to the seat, as seen from mine
      const rx = seat.x - me.x;
      const rz = seat.z - me.z;
      const right = (dz / len) * rx - (dx / len) * rz; // cross product sign: + is to my right
      v.stereo.pan.value = Math.max(-1, Math.min(1, -right / (Math.hypot(rx, rz) || 1)));
    }
  }

  /** Root-mean-square level (0..1) of each voice right now. */
  levels() {
    const out = {};
    for (const [key, v] of this.voices) {
      v.analyser.getFloatTimeDomainData(v.data);
      let sum = 0;
      for (const x of v.data) sum += x * x;
      v.level = Math.sqrt(sum / v.data.length);
      out[key] = v.level;
    }
    return out;
  }

  /** Microphone level meter and echo test on the local track. */
  watchMic(track) {
    this.unwatchMic();
    const stream = new MediaStream([track]);
    const source = this.ctx.createMediaStreamSource(stream);
    const analyser = this.ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    this.mic = { source, analyser, data: new Float32Array(1024), echo: null };
  }

  unwatchMic() {
    if (!this.mic) return;
    this.stopEcho();
    this.mic.source.disconnect();
    this.mic = null;
  }

  micLevel() {
    if (!this.mic) return 0;
    this.mic.analyser.getFloatTimeDomainData(this.mic.data);
    let sum = 0;
    for (const x of this.mic.data) sum += x * x;
    return Math.sqrt(sum / this.mic.data.length);
  }

  startEcho(seconds = 6) {
    if (!this.mic || this.mic.echo) return;
    const delay = this.ctx.createDelay(2);
    delay.delayTime.value = 0.35;
    const gain = this.ctx.createGain();
    gain.gain.value = 0.8;
    this.mic.source.connect(delay);
    delay.connect(gain);
    gain.connect(this.ctx.destination);
    const timer = setTimeout(() => this.stopEcho(), seconds * 1000);
    this.mic.echo = { delay, gain, timer };
  }

  stopEcho() {
    const echo = this.mic?.echo;
    if (!echo) return;
    clearTimeout(echo.timer);
    echo.delay.disconnect();
    echo.gain.disconnect();
    this.mic.echo = null;
  }

  close() {
    for (const key of [...this.voices.keys()]) this.detach(key);
    this.unwatchMic();
    this.ctx.close();
  }
}
