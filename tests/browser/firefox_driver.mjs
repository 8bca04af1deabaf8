// Drives Debian's firefox-esr for the Python tests over WebDriver BiDi (puppeteer-core; no
// downloaded browser). One JSON command per stdin line, one JSON reply per stdout line:
//   {"id", "op": "open", "url", "width", "height"}          -> {"id", "ok", "page"}
//   {"id", "op": "eval", "page", "expression"}              -> {"id", "ok", "value"}
//   {"id", "op": "click" | "fill", "page", "selector", "text"?}
//   {"id", "op": "errors", "page"}                          -> page errors seen so far
//   {"id", "op": "close", "page"}   {"id", "op": "quit"}
// argv[2]: JSON {executablePath, prefs, env}. Fake media comes from the prefs
// (media.navigator.streams.fake, media.navigator.permission.disabled).
import readline from "node:readline";
import puppeteer from "puppeteer-core";

const options = JSON.parse(process.argv[2] || "{}");
const browser = await puppeteer.launch({
  browser: "firefox",
  executablePath: options.executablePath || "/usr/bin/firefox-esr",
  headless: true,
  extraPrefsFirefox: options.prefs || {},
  env: { ...process.env, ...(options.env || {}) },
  protocolTimeout: 120_000,
});
const pages = new Map();
const errors = new Map();
let nextPage = 1;

function reply(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

async function run(cmd) {
  const page = pages.get(cmd.page);
  switch (cmd.op) {
    case "open": {
      const p = await browser.newPage();
      const id = nextPage++;
      pages.set(id, p);
      errors.set(id, []);
      p.on("pageerror", (e) => errors.get(id).push(String(e?.message ?? e)));
      await p.setViewport({ width: cmd.width || 1280, height: cmd.height || 800 });
      await p.goto(cmd.url);
      return { page: id };
    }
    case "eval":
      return { value: await page.evaluate(cmd.expression) };
    case "click":
      await page.click(cmd.selector);
      return {};
    case "fill":
      await page.locator(cmd.selector).fill(cmd.text);
      return {};
    case "errors":
      return { value: errors.get(cmd.page) };
    case "close":
      await page.close();
      pages.delete(cmd.page);
      return {};
    case "quit":
      await browser.close();
      return {};
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

reply({ ready: true, version: await browser.version() });
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const cmd = JSON.parse(line);
  try {
    reply({ id: cmd.id, ok: true, ...(await run(cmd)) });
  } catch (err) {
    reply({ id: cmd.id, ok: false, error: String(err?.message ?? err) });
  }
  if (cmd.op === "quit") break;
}
process.exit(0);
