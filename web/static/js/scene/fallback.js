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

/** A room seen from a seat: the far wall with its window onto the sky and the garden, the
 * floor, the rug, soft pools of lamplight. */
function paintRoom(ctx, def, w, h) {
  const room = def.interior;
  const floorY = h * 0.56;
  const wall = ctx.createLinearGradient(0, 0, 0, floorY);
  wall.addColorStop(0, mix(room.ceiling_color, room.wall_color, 0.5));
  wall.addColorStop(1, mix(room.wall_color, "#000000", 0.12));
  ctx.fillStyle = wall;
  ctx.fillRect(0, 0, w, floorY);
  const north = room.windows.find((win) => win.wall === "north") ?? room.windows[0];
  if (north) {
    const scale = w / room.width;
    const ww = north.width * scale * 0.75, wh = north.height * (floorY / room.height) * 0.95;
    const x0 = w / 2 + north.offset * scale * 0.75 - ww / 2;
    const y0 = floorY - (north.sill / room.height) * floorY - wh;
    const view = ctx.createLinearGradient(0, y0, 0, y0 + wh);
    view.addColorStop(0, def.sky.zenith);
    view.addColorStop(0.62, def.sky.horizon);
    view.addColorStop(0.63, def.terrain.color);
    view.addColorStop(1, mix(def.terrain.color, "#000000", 0.2));
    ctx.fillStyle = view;
    ctx.fillRect(x0, y0, ww, wh);
    ctx.strokeStyle = room.trim_color ?? room.wall_color;
    ctx.lineWidth = Math.max(3, w / 200);
    ctx.strokeRect(x0, y0, ww, wh);
    ctx.beginPath();
    const panes = Math.max(1, Math.round(north.width / 1.1));
    for (let i = 1; i < panes; i++) {
      ctx.moveTo(x0 + (ww * i) / panes, y0);
      ctx.lineTo(x0 + (ww * i) / panes, y0 + wh);
    }
    ctx.moveTo(x0, y0 + wh * 0.38);
    ctx.lineTo(x0 + ww, y0 + wh * 0.38);
    ctx.stroke();
  }
  const floor = ctx.createLinearGradient(0, floorY, 0, h);
  floor.addColorStop(0, mix(room.floor_color, "#000000", 0.2));
  floor.addColorStop(1, room.floor_color);
  ctx.fillStyle = floor;
  ctx.fillRect(0, floorY, w, h - floorY);
  if (room.rug) {
    ctx.fillStyle = room.rug.border_color;
    ctx.beginPath();
    ctx.ellipse(w / 2, h * 0.86, w * 0.5, h * 0.26, 0, 0, Math.PI * 2);
    ctx.fill();
    ctx.fillStyle = room.rug.color;
    ctx.beginPath();
    ctx.ellipse(w / 2, h * 0.86, w * 0.47, h * 0.24, 0, 0, Math.PI * 2);
    ctx.fill();
  }
  for (const lamp of def.lamps ?? []) {
    const x = w / 2 + (lamp.x / room.width) * w * 0.9;
    const glow = ctx.createRadialGradient(x, h * 0.3, 0, x, h * 0.3, h * 0.4);
    glow.addColorStop(0, `${lamp.color}cc`);
    glow.addColorStop(1, `${lamp.color}00`);
    ctx.fillStyle = glow;
    ctx.fillRect(0, 0, w, h);
  }
}

/** Paint `definition` onto a 2D canvas (sized to its container). Returns the canvas. */
export function paintFallback(canvas, definition) {
  const def = definition;
  const rect = canvas.parentElement?.getBoundingClientRect();
  const w = (canvas.width = Math.max(320, Math.round(rect?.width || 960)));
  const h = (canvas.height = Math.max(180, Math.round(rect?.height || 540)));
  const ctx = canvas.getContext("2d");
  if (def.interior) {
    paintRoom(ctx, def, w, h);
    return canvas;
  }
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
