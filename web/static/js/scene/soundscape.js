// The ambient soundscape player: Web Audio (decoded once, looped sample-accurately, so the
// seamless loop stays seamless) with its own gain; falls back to <audio loop>.
// Nothing plays until play() is called from a user gesture.

export class SoundscapePlayer {
  constructor(url, { volume = 0.6 } = {}) {
    this.url = url;
    this.volume = volume;
    this.playing = false;
    this.ctx = null;
    this.gain = null;
    this.source = null;
    this.buffer = null;
    this.element = null;
  }

  async play() {
    if (this.playing) return;
    this.playing = true;
    try {
      await this.#playWebAudio();
    } catch (err) {
      this.#stopWebAudio();
      await this.#playElement();
    }
  }

  async #playWebAudio() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) throw new Error("no Web Audio");
    if (!this.ctx) {
      this.ctx = new Ctx();
      this.gain = this.ctx.createGain();
      this.gain.gain.value = 0;
      this.gain.connect(this.ctx.destination);
    }
    await this.ctx.resume();
    if (!this.buffer) {
      const response = await fetch(this.url);
      if (!response.ok) throw new Error(`soundscape: HTTP ${response.status}`);
      this.buffer = await this.ctx.decodeAudioData(await response.arrayBuffer());
    }
    if (!this.playing) return;
    this.source = this.ctx.createBufferSource();
    this.source.buffer = this.buffer;
    this.source.loop = true;
    this.source.connect(this.gain);
    this.source.start();
    const now = this.ctx.currentTime;
    this.gain.gain.cancelScheduledValues(now);
    this.gain.gain.setValueAtTime(this.gain.gain.value, now);
    this.gain.gain.linearRampToValueAtTime(this.volume, now + 1.5);
  }

  #stopWebAudio() {
    try {
      this.source?.stop();
    } catch {
      /* already stopped */
    }
    this.source?.disconnect();
    this.source = null;
  }

  async #playElement() {
    if (!this.element) {
      this.element = new Audio(this.url);
      this.element.loop = true;
    }
    this.element.volume = this.volume;
    await this.element.play();
  }

  pause() {
    this.playing = false;
    if (this.source && this.ctx) {
      const src = this.source;
      const now = this.ctx.currentTime;
      this.gain.gain.cancelScheduledValues(now);
      this.gain.gain.setValueAtTime(this.gain.gain.value, now);
      this.gain.gain.linearRampToValueAtTime(0, now + 0.4);
      this.source = null;
      setTimeout(() => {
        try {
          src.stop();
        } catch {
          /* already stopped */
        }
        src.disconnect();
      }, 450);
    }
    this.element?.pause();
  }

  setVolume(v) {
    this.volume = Math.min(1, Math.max(0, v));
    if (this.gain && this.ctx && this.source) {
      this.gain.gain.setTargetAtTime(this.volume, this.ctx.currentTime, 0.05);
    }
    if (this.element) this.element.volume = this.volume;
  }

  get state() {
    if (!this.playing) return "paused";
    if (this.source) return "playing-webaudio";
    if (this.element && !this.element.paused) return "playing-element";
    return "loading";
  }

  dispose() {
    this.pause();
    this.ctx?.close();
    this.element?.removeAttribute("src");
  }
}
