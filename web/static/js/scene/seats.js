// Seat positions round the circle. environments/catalog.py (seat_positions) uses the
// same formula, so the server and the browser agree where each voice sits.

export const MAX_PEOPLE = 16;

/** The circle grows when needed so neighbours are at least `min_spacing` apart. */
export function circleRadius(seating, n) {
  if (n <= 1) return seating.radius;
  const spacing = seating.min_spacing ?? 1.15;
  return Math.max(seating.radius, spacing / (2 * Math.sin(Math.PI / n)));
}

/**
 * Where `n` people sit: evenly round the circle, seat 0 at `start_angle_deg` (0 = on the +z
 * side, facing -z), each facing the centre. `y` is the seated ear height above the ground.
 * @returns {{index:number, x:number, y:number, z:number, yaw:number}[]}
 */
export function seatPositions(definition, n) {
  const seating = definition.seating;
  const max = seating.max_people ?? MAX_PEOPLE;
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw new RangeError(`group size must be from 1 to ${max}`);
  }
  const r = circleRadius(seating, n);
  const [cx, cz] = seating.center ?? [0, 0];
  const start = ((seating.start_angle_deg ?? 0) * Math.PI) / 180;
  const seats = [];
  for (let i = 0; i < n; i++) {
    const theta = start + (2 * Math.PI * i) / n;
    seats.push({
      index: i,
      x: cx + r * Math.sin(theta),
      y: seating.eye_height,
      z: cz + r * Math.cos(theta),
      yaw: theta,
    });
  }
  return seats;
}
