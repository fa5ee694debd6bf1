// A small command server around headless Chromium, for end-to-end tests
// driven from Go (examples/chat/browser_test.go). It reads one JSON
// command per line on standard input and answers each with one JSON line
// on standard output: {"ok": true, ...} or {"ok": false, "error": "..."}.
//
// Commands:
//   {"op":"open","page":"a","url":"http://…/#room","nick":"ann"}  a page in a context of its own, nick preset
//   {"op":"type","page":"a","text":"hello"}                        types a line into the message box and sends it
//   {"op":"count","page":"a","css":"#log li.msg"}                  how many elements match
//   {"op":"waitCount","page":"a","css":"…","n":1}                  waits until exactly n match
//   {"op":"waitState","page":"a","state":"open"}                   waits for the client's state (body[data-state])
//   {"op":"texts","page":"a","css":"#log li"}                      the text of every element that matches
//   {"op":"screenshot","page":"a","path":"/tmp/x.png","width":390} a screenshot (optionally at a phone's width)
//   {"op":"quit"}
//
// Chromium is Debian's (/usr/bin/chromium unless CHROMIUM says otherwise),
// started headless with the flags that keep it off the network.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const timeout = Number(process.env.E2E_TIMEOUT_MS || 20000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // playwright gives the browser a fresh, empty profile (--user-data-dir)
  // of its own, removed when it closes.
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});

const pages = new Map();
const consoleLines = [];

function page(id) {
  const p = pages.get(id);
  if (!p) throw new Error(`no page ${id}`);
  return p;
}

async function handle(cmd) {
  switch (cmd.op) {
    case "open": {
      const context = await browser.newContext({ viewport: { width: cmd.width || 1000, height: cmd.height || 700 } });
      await context.addInitScript((nick) => localStorage.setItem("msgtrans-chat-nick", nick), cmd.nick);
      const p = await context.newPage();
      p.setDefaultTimeout(timeout);
      p.on("console", (m) => consoleLines.push(`${cmd.page} console.${m.type()}: ${m.text()}`));
      p.on("pageerror", (e) => consoleLines.push(`${cmd.page} page error: ${e.message}`));
      pages.set(cmd.page, p);
      await p.goto(cmd.url);
      return {};
    }
    case "type": {
      const p = page(cmd.page);
      await p.fill("#text", cmd.text);
      await p.press("#text", "Enter");
      // The box empties once the line has been handed to the client.
      await p.waitForFunction(() => document.querySelector("#text").value === "");
      return {};
    }
    case "count":
      return { n: await page(cmd.page).locator(cmd.css).count() };
    case "waitCount": {
      const p = page(cmd.page);
      await p.waitForFunction(([css, n]) => document.querySelectorAll(css).length === n, [cmd.css, cmd.n], { timeout });
      return {};
    }
    case "waitState": {
      const p = page(cmd.page);
      await p.waitForSelector(`body[data-state="${cmd.state}"]`, { state: "attached", timeout });
      return { status: await p.textContent("#status") };
    }
    case "texts":
      return { texts: await page(cmd.page).locator(cmd.css).allTextContents() };
    case "screenshot": {
      const p = page(cmd.page);
      if (cmd.width) await p.setViewportSize({ width: cmd.width, height: cmd.height || 740 });
      await p.screenshot({ path: cmd.path, fullPage: false });
      return {};
    }
    case "console":
      return { lines: consoleLines };
    case "quit":
      await browser.close();
      return {};
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

process.stdout.write(JSON.stringify({ ok: true, ready: true, version: browser.version() }) + "\n");
const rl = createInterface({ input: process.stdin });
for await (const l of rl) {
  if (!l.trim()) continue;
  let reply;
  try {
    const cmd = JSON.parse(l);
    reply = { ok: true, ...(await handle(cmd)) };
    if (cmd.op === "quit") {
      process.stdout.write(JSON.stringify(reply) + "\n");
      process.exit(0);
    }
  } catch (err) {
    reply = { ok: false, error: String(err && err.message ? err.message : err) };
  }
  process.stdout.write(JSON.stringify(reply) + "\n");
}
await browser.close();
