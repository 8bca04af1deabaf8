"""Layout checks shared by the room and site-wide browser tests: horizontal overflow, scroll,
canvas coverage and axe (axe-core from node_modules), all measured in the real page."""

from __future__ import annotations

from tests.conftest import ROOT

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"

# Elements whose box leaves the viewport sideways (visually hidden helpers excepted), and
# whether the document itself scrolls.
OVERFLOW_JS = """() => {
  const w = document.documentElement.clientWidth;
  const hidden = (el) => {
    for (let n = el; n && n !== document.body; n = n.parentElement) {
      const cs = getComputedStyle(n);
      if (cs.display === "none" || cs.visibility === "hidden") return true;
      if (n.classList.contains("visually-hidden") || n.classList.contains("skip-link")) return true;
      if (cs.clip && cs.clip !== "auto" && cs.position === "absolute") return true;
    }
    return false;
  };
  const bad = [];
  for (const el of document.body.querySelectorAll("*")) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || r.height === 0) continue;
    if ((r.right > w + 1 || r.left < -1) && !hidden(el)) {
      bad.push(`${el.tagName.toLowerCase()}${el.id ? "#" + el.id : ""}.${[...el.classList].join(".")} ` +
               `[${Math.round(r.left)}..${Math.round(r.right)}] ${(el.textContent || "").trim().slice(0, 40)}`);
    }
  }
  const doc = document.documentElement;
  return {width: w, scrollWidth: doc.scrollWidth, scrollHeight: doc.scrollHeight,
          height: innerHeight, bad: bad.slice(0, 12)};
}"""

CANVAS_COVERAGE_JS = """() => {
  const c = document.querySelector("#scene canvas");
  if (!c) return 0;
  const r = c.getBoundingClientRect();
  const w = Math.max(0, Math.min(r.right, innerWidth) - Math.max(r.left, 0));
  const h = Math.max(0, Math.min(r.bottom, innerHeight) - Math.max(r.top, 0));
  return (w * h) / (innerWidth * innerHeight);
}"""


def overflow(page) -> dict:
    return page.evaluate(OVERFLOW_JS)


def assert_no_horizontal_overflow(page, where: str) -> None:
    o = overflow(page)
    assert o["scrollWidth"] <= o["width"] and not o["bad"], (where, o)


def serious_axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text())
    # A card or drawer still fading in has partly transparent text; axe would judge that frame's
    # contrast, not the page's, so let running animations finish first.
    page.evaluate("() => Promise.all(document.getAnimations().map(a => a.finished.catch(() => null)))")
    found = page.evaluate(
        "async () => (await axe.run(document)).violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))")
    return [v for v in found if v["impact"] in ("serious", "critical")]
