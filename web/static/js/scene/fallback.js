// The 2D fallback when WebGL is missing: a calm still picture painted from the same
// definition (sky gradient, sun glow, sea or ground, soft silhouettes of the props).

import { mixSeed, mulberry32, range } from "./random.js";

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function mix(a, b, t) {
  const x = hexToRgb(a), y = hexToRgb(b);
  return `rgb(${x.map((v, i) => Math.round(v + (y[i] - v) * t)).join(",")})`;
}

/** Paint `definition` onto a 2D canvas (sized to its container). Returns the canvas. */
export function paintFallback(canvas, definition) {
  const def = definition;
  const rect = canvas.parentElement?.getBoundingClientRect();
  const w = (canvas.width = Math.max(320, Math.round(rect?.width || 960)));
  const h = (canvas.height = Math.max(180, Math.round(rect?.height || 540)));
  const ctx = canvas.getContext("2d");
  const horizonY = h * 0.45;

  const sky = ctx.createLinearGradient(0, 0, 0, horizonY);
  sky.addColorStop(0, def.sky.zenith);
  sky.addColorStop(1, def.sky.horizon);
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, horizonY + 1);

  // the sun, if it is in front of us (azimuth near 180 = straight ahead)
  const az = ((def.light.sun_azimuth_deg % 360) + 360) % 360;
  const ahead = Math.cos(((az - 180) * Math.PI) / 180);
  if (ahead > 0.2) {
    const sx = w / 2 + Math.sin(((az - 180) * Math.PI) / 180) * w * 0.6;
    const sy = horizonY - (def.light.sun_elevation_deg / 60) * horizonY;
    const glow = ctx.createRadialGradient(sx, sy, 0, sx, sy, h * 0.35);
    glow.addColorStop(0, mix(def.light.sun_color, "#ffffff", 0.5));
    glow.addColorStop(0.08, def.light.sun_color);
    glow.addColorStop(1, "rgba(255,255,255,0)");
    ctx.fillStyle = glow;
    ctx.fillRect(0, 0, w, h);
  }

  const rand = mulberry32(mixSeed(def.seed, 77));
  const haze = def.fog.color;
  if (def.water) {
    const sea = ctx.createLinearGradient(0, horizonY, 0, h * 0.68);
    sea.addColorStop(0, mix(def.water.deep_color, haze, 0.45));
    sea.addColorStop(1, def.water.color);
    ctx.fillStyle = sea;
    ctx.fillRect(0, horizonY, w, h * 0.68 - horizonY);
    ctx.fillStyle = def.water.foam_color;
    ctx.fillRect(0, h * 0.67, w, h * 0.015);
  }
  const groundTop = def.water ? h * 0.68 : horizonY;
  const ground = ctx.createLinearGradient(0, groundTop, 0, h);
  ground.addColorStop(0, mix(def.terrain.color, haze, def.water ? 0.1 : 0.4));
  ground.addColorStop(1, def.terrain.color);
  ctx.fillStyle = ground;
  ctx.fillRect(0, groundTop, w, h - groundTop);

  // soft silhouettes: trees behind, a few rocks or bushes in front
  for (const group of def.props) {
    const count = Math.min(group.count, 24);
    for (let i = 0; i < count; i++) {
      const x = range(rand, 0, w);
      const depth = range(rand, 0.3, 1);
      const colour = mix(group.colors[group.colors.length - 1], haze, 1 - depth * 0.7);
      ctx.fillStyle = colour;
      const base = groundTop + (def.water ? depth * (h - groundTop) * 0.3 : depth * h * 0.06);
      const size = h * 0.12 * depth * (group.scale[0] + group.scale[1]) / 2;
      if (group.kind === "pine") {
        ctx.beginPath();
        ctx.moveTo(x, base - size * 3);
        ctx.lineTo(x - size * 0.7, base);
        ctx.lineTo(x + size * 0.7, base);
        ctx.fill();
      } else if (group.kind === "broadleaf" || group.kind === "palm") {
        if (def.water && x > w * 0.25 && x < w * 0.75) continue;
        ctx.fillRect(x - size * 0.06, base - size * 2, size * 0.12, size * 2);
        ctx.beginPath();
        ctx.ellipse(x, base - size * 2.1, size * 0.8, size * (group.kind === "palm" ? 0.3 : 0.7), 0, 0, Math.PI * 2);
        ctx.fill();
      } else if (i < 8) {
        ctx.beginPath();
        ctx.ellipse(x, base, size * 0.5, size * 0.3, 0, Math.PI, 0);
        ctx.fill();
      }
    }
  }
  return canvas;
}
