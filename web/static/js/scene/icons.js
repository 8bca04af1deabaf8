// Icons for the scene's marks and VR controls, from the Tabler icon set (MIT, served by Haven
// at /vendor/tabler-icons/ from npm): loaded once as white images to draw into textures.

export const ICON_BASE = "/vendor/tabler-icons/outline/";
const cache = new Map();

/** A white image of the named Tabler outline icon (resolves to null if it cannot load). */
export function loadIcon(name, color = "#ffffff") {
  const key = `${name}:${color}`;
  if (!cache.has(key)) {
    cache.set(key, (async () => {
      try {
        const response = await fetch(`${ICON_BASE}${name}.svg`);
        if (!response.ok) return null;
        const svg = (await response.text()).replaceAll("currentColor", color);
        const img = new Image();
        img.src = URL.createObjectURL(new Blob([svg], { type: "image/svg+xml" }));
        await img.decode();
        return img;
      } catch {
        return null;
      }
    })());
  }
  return cache.get(key);
}
