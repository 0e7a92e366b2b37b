// Shared helpers of the end-to-end tests (e2e/*.test.mjs, run by `cargo xtask test --only e2e`):
// the stack's addresses from xtask's SN_* variables, one headless Chromium per test file,
// pages that record their responses and problems, in-page instrumentation of timers and
// requests, and waits that poll a condition against a deadline instead of sleeping.
import { before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

export const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through \`cargo xtask test\``);
  return value;
};

export const HOST_URL = env("SN_HOST_URL");
export const BFF_URL = env("SN_BFF_URL");
export const SANDBOX_URL = env("SN_SANDBOX_URL");
export const ISSUER = env("SN_ISSUER");
export const CLIENT_SECRET = env("SN_CLIENT_SECRET");
export const AGENT_ID = env("SN_AGENT_ID");
export const GREETING = env("SN_GREETING");
export const SECOND_AGENT_ID = env("SN_SECOND_AGENT_ID");
export const SECOND_GREETING = env("SN_SECOND_GREETING");
/** The sandbox's LiveKit stand-in (`ws://…`), and the secret it signs join tokens with (API key `devkey`). */
export const LIVEKIT_URL = env("SN_LIVEKIT_URL");
export const LIVEKIT_SECRET = env("SN_LIVEKIT_SECRET");
/** The LiveKit server's origin over HTTP(S): livekit-client fetches `/rtc/validate` there. */
export const LIVEKIT_HTTP_URL = LIVEKIT_URL.replace(/^ws(s?):/, "http$1:");
/**
 * The Content-Security-Policy the README promises the widget works under; the same string as
 * xtask's `strict_csp` (xtask/src/stack.rs).
 */
export const STRICT_CSP = `default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self' ${BFF_URL} ${LIVEKIT_URL} ${LIVEKIT_HTTP_URL}`;

/** Chromium flags for a quiet, sandbox-less headless run on a closed network. */
export const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
  "--disable-quic",
];

export function launchChromium(extraArgs = []) {
  return chromium.launch({ executablePath: env("SN_CHROMIUM"), args: [...CHROMIUM_ARGS, ...extraArgs] });
}

/**
 * Whether a console error is Chromium reporting livekit-client's first signalling attempt.
 * The SDK tries `/rtc/v1` (and `/rtc/v1/validate`) before falling back to `/rtc`, and the
 * sandbox's LiveKit stand-in answers v1 with 404 by design (docs/design/voice-plan.md §0).
 * Every conversation in the stack has a call, so every widget that starts one logs these two
 * 404s; nothing else is excused.
 */
function isSignallingFallback(message) {
  const said = `${message.text()} ${message.location().url}`;
  return /\/rtc\/v1[/?]/.test(said) && /Unexpected response code: 404|status of 404/.test(said);
}

/**
 * An HTTP proxy the test can cut, for a real network drop: `drop()` resets every connection
 * the browser has open (event streams included) and refuses new ones until `restore()`.
 * Chromium must be launched with `args` (loopback traffic goes through it too).
 */
export async function cuttableProxy() {
  const sockets = new Set();
  let down = false;
  const server = http.createServer((request, response) => {
    if (down) return request.socket.destroy();
    const target = new URL(request.url);
    const headers = { ...request.headers };
    delete headers["proxy-connection"];
    const upstream = http.request(
      { host: target.hostname, port: target.port, method: request.method, path: `${target.pathname}${target.search}`, headers },
      (answer) => {
        response.writeHead(answer.statusCode, answer.statusMessage, answer.rawHeaders);
        answer.pipe(response);
      },
    );
    upstream.on("error", () => request.socket.destroy());
    response.on("close", () => upstream.destroy());
    request.pipe(upstream);
  });
  server.on("connection", (socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = `http://127.0.0.1:${server.address().port}`;
  return {
    args: [`--proxy-server=${address}`, "--proxy-bypass-list=<-loopback>"],
    drop() {
      down = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(resolve);
      }),
  };
}

// One browser per test file (node --test runs each file in a process of its own); every test
// gets a fresh context, so no storage or cache leaks from one test to the next.
let shared;

/** Launches the file's browser before its tests and closes it after them. */
export function useBrowser() {
  before(async () => {
    shared = await launchChromium();
  });
  after(async () => {
    await shared?.close();
  });
}

/** Sets the browser openPage() uses, for scripts that are not tests. */
export function setBrowser(browser) {
  shared = browser;
}

/** The URL of a fixture page (e2e/pages/), with query parameters. */
export function fixture(name, params = {}) {
  const url = new URL(`/fixtures/${name}`, HOST_URL);
  for (const [key, value] of Object.entries(params)) url.searchParams.set(key, value);
  return url.href;
}

/**
 * Opens `url` in a fresh context. Records every response with its body (`records`, complete
 * once `pending` settles; EventSource messages come as records with the url "eventsource"),
 * the page's errors and console errors (`problems`), requests not yet finished (`open`) and
 * failed ones (`failed`), Content-Security-Policy violations (window.__violations), and, with
 * `instrument`, the page's timers, fetches and EventSources (see `liveWork`); `initScripts`
 * run before the page's scripts too.
 */
export async function openPage(url, { instrument = false, context: contextOptions = {}, viewport, browser = shared, initScripts = [] } = {}) {
  const context = await browser.newContext({ viewport: viewport ?? { width: 1280, height: 800 }, ...contextOptions });
  const page = await context.newPage();
  await page.addInitScript(recordViolations);
  if (instrument) await page.addInitScript(instrumentPage);
  // More init scripts of the caller's (e.g. keepPeerConnections), before the page's own.
  for (const script of initScripts) await page.addInitScript(script);
  const records = [];
  const pending = [];
  const open = new Set();
  const failed = [];
  page.on("request", (request) => open.add(request));
  page.on("requestfinished", (request) => open.delete(request));
  page.on("requestfailed", (request) => {
    open.delete(request);
    failed.push(request);
  });
  page.on("response", (response) => {
    pending.push(
      (async () => {
        let headers;
        try {
          headers = await response.allHeaders();
        } catch {
          // The test closed the context while this response was arriving (a call's room
          // keeps talking until then): there is no page left to have seen it.
          return;
        }
        let body = "";
        // An event stream's body ends only with the stream; its messages come from DevTools.
        if (!(headers["content-type"] ?? "").startsWith("text/event-stream")) {
          try {
            body = (await response.body()).toString("latin1");
          } catch {
            // Redirects and aborted loads have no body to read.
          }
        }
        const request = response.request();
        records.push({ url: response.url(), method: request.method(), requestBody: request.postData(), status: response.status(), headers, body });
      })(),
    );
  });
  // Chromium keeps no body for an EventSource response; DevTools reports each message.
  const devtools = await context.newCDPSession(page);
  await devtools.send("Network.enable");
  devtools.on("Network.eventSourceMessageReceived", ({ eventName, data }) => {
    records.push({ url: "eventsource", method: "GET", status: 200, headers: {}, body: `event: ${eventName}\ndata: ${data}` });
  });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error" && !isSignallingFallback(message)) {
      problems.push(`console error: ${message.text()} (${message.location().url})`);
    }
  });
  await page.goto(url);
  return { context, page, records, pending, problems, open, failed };
}

/** Polls `condition` (async, truthy when met) until it holds; fails with `message` after
 *  `timeout` ms, showing the last value seen. */
export async function until(condition, { timeout = 15_000, interval = 25, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    last = await condition();
    if (last) return last;
    if (Date.now() > deadline) assert.fail(`timed out after ${timeout} ms waiting for ${message}; last saw ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Resolves once the page has rendered two more frames. Closing the panel in the frame its
 *  transcript last changed makes the app panic today (src/ui/panel.rs scrolls the
 *  transcript from a requestAnimationFrame that reads a NodeRef the closed panel has
 *  disposed), so tests that close the panel by script or key wait for this first; remove it
 *  once that is fixed. Clicks need no such wait: Playwright waits for a stable element. */
export function afterFrames(page) {
  return page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve))));
}

/** The widget's launcher, panel and status, through its Shadow DOM. */
export const launcher = (page) => page.getByTestId("sn-launcher");
export const panel = (page) => page.getByTestId("sn-panel");

/** Waits until the conversation is Active and the agent's `greeting` is in the transcript. */
export async function waitForGreeting(page, greeting = GREETING) {
  await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor({ timeout: 20_000 });
  await page.getByTestId("sn-transcript").getByText(greeting).waitFor({ timeout: 10_000 });
}

/** The transcript as the visitor sees it: one [role, text] pair per turn. */
export async function transcript(page) {
  return page.getByTestId("sn-turn").evaluateAll((turns) =>
    turns.map((turn) => [turn.dataset.role, turn.querySelector(".sn-text")?.textContent.trim()]),
  );
}

/** The id of the conversation the page started, from the BFF's answer to the start. */
export async function conversationId(records, pending) {
  return until(async () => {
    await Promise.all(pending);
    const started = records.find((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/conversations` && r.status === 201);
    return started && JSON.parse(started.body).conversation.id;
  }, { message: "the BFF's answer to the conversation start" });
}

/** Speaks as the visitor through the sandbox's admin route (the sandbox's stand-in for the
 *  voice channel); the scripted agent answers after its think time. */
export async function say(id, text) {
  const response = await fetch(`${SANDBOX_URL}/__sandbox/conversations/${id}/user-turns`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ text }),
  });
  assert.equal(response.status, 202, `the sandbox took the user turn: ${await response.text()}`);
}

/** The data-testid (or tag name) of the element that has keyboard focus, through shadow roots. */
export function focused(page) {
  return page.evaluate(() => {
    let active = document.activeElement;
    while (active?.shadowRoot?.activeElement) active = active.shadowRoot.activeElement;
    return active?.dataset?.testid ?? active?.localName ?? null;
  });
}

/** Presses Tab until the element with `testid` has focus, as a keyboard user would. */
export async function tabTo(page, testid, { max = 20 } = {}) {
  const path = [];
  for (let presses = 0; presses < max; presses += 1) {
    await page.keyboard.press("Tab");
    const now = await focused(page);
    path.push(now);
    if (now === testid) return;
  }
  assert.fail(`Tab never reached ${testid}; focus went ${path.join(" → ")}`);
}

/** Collects the widget's DOM events on the page's document, in order, into window.__events. */
export async function collectEvents(page) {
  await page.evaluate(() => {
    window.__events = [];
    for (const name of ["ready", "open", "close", "status", "message", "error", "ended"]) {
      document.addEventListener(`speaknode:${name}`, (event) => window.__events.push({ type: name, detail: event.detail }));
    }
  });
}

/** Records securitypolicyviolation events into window.__violations (an init script). */
function recordViolations() {
  window.__violations = [];
  document.addEventListener("securitypolicyviolation", (event) => {
    window.__violations.push({ directive: event.violatedDirective, blocked: event.blockedURI, source: event.sourceFile });
  });
}

/** Counts the page's live timers, idle callbacks, animation frames, pending fetches and open
 *  EventSources (an init script, so it wraps them before any page script runs). */
function instrumentPage() {
  const live = { timers: new Map(), intervals: new Map(), idle: new Map(), frames: new Map(), fetches: 0, sources: new Set() };
  Object.defineProperty(window, "__live", { value: live });
  const original = {
    setTimeout: window.setTimeout,
    clearTimeout: window.clearTimeout,
    setInterval: window.setInterval,
    clearInterval: window.clearInterval,
    requestIdleCallback: window.requestIdleCallback,
    cancelIdleCallback: window.cancelIdleCallback,
    requestAnimationFrame: window.requestAnimationFrame,
    cancelAnimationFrame: window.cancelAnimationFrame,
    fetch: window.fetch,
  };
  const where = () => (new Error().stack ?? "").split("\n").slice(2, 5).join(" | ");
  const once = (table, schedule, cancel) => {
    window[schedule] = function (callback, ...rest) {
      const id = original[schedule].call(window, function (...args) {
        table.delete(id);
        if (typeof callback === "function") return callback.apply(this, args);
      }, ...rest);
      table.set(id, where());
      return id;
    };
    window[cancel] = function (id) {
      table.delete(id);
      return original[cancel].call(window, id);
    };
  };
  once(live.timers, "setTimeout", "clearTimeout");
  once(live.idle, "requestIdleCallback", "cancelIdleCallback");
  once(live.frames, "requestAnimationFrame", "cancelAnimationFrame");
  window.setInterval = function (...args) {
    const id = original.setInterval.apply(window, args);
    live.intervals.set(id, where());
    return id;
  };
  window.clearInterval = function (id) {
    live.intervals.delete(id);
    return original.clearInterval.call(window, id);
  };
  window.fetch = function (...args) {
    live.fetches += 1;
    const settled = () => {
      live.fetches -= 1;
    };
    const result = original.fetch.apply(this, args);
    result.then(settled, settled);
    return result;
  };
  if (window.EventSource) {
    const Source = window.EventSource;
    window.EventSource = class extends Source {
      constructor(...args) {
        super(...args);
        live.sources.add(this);
      }
      close() {
        live.sources.delete(this);
        super.close();
      }
    };
  }
}

/** What the page still has running (requires `instrument`): pending timers, intervals, idle
 *  callbacks, animation frames, unsettled fetches, EventSources not closed. */
export async function liveWork(page) {
  return page.evaluate(() => {
    const live = window.__live;
    return {
      timers: [...live.timers.values()],
      intervals: [...live.intervals.values()],
      idle: [...live.idle.values()],
      frames: [...live.frames.values()],
      fetches: live.fetches,
      eventSources: [...live.sources].filter((source) => source.readyState !== 2).map((source) => source.url),
    };
  });
}

/** Whether nothing is left running. */
export function idle(work) {
  return work.timers.length + work.intervals.length + work.idle.length + work.frames.length + work.fetches + work.eventSources.length === 0;
}

/** The event listeners the page's own scripts (the host's, the loader, the app) hold on
 *  window and document, as "type @ script", through the DevTools protocol. Playwright's own
 *  listeners (it adds some for its clicks) come from scripts without a URL and are left out. */
export async function globalListeners(page) {
  const session = await page.context().newCDPSession(page);
  const scripts = new Map();
  session.on("Debugger.scriptParsed", ({ scriptId, url }) => scripts.set(scriptId, url));
  await session.send("Debugger.enable");
  const listed = async (expression) => {
    const { result } = await session.send("Runtime.evaluate", { expression });
    const { listeners } = await session.send("DOMDebugger.getEventListeners", { objectId: result.objectId });
    await session.send("Runtime.releaseObject", { objectId: result.objectId });
    return listeners
      .map((listener) => ({ type: listener.type, url: scripts.get(listener.scriptId) ?? "" }))
      .filter((listener) => listener.url.startsWith(HOST_URL))
      .map((listener) => `${listener.type} @ ${new URL(listener.url).pathname}`)
      .sort();
  };
  const found = { window: await listed("window"), document: await listed("document") };
  await session.send("Debugger.disable");
  await session.detach();
  return found;
}

/** Every JWT-shaped string in `text`, with its decoded payload when it decodes. */
export function jwts(text) {
  const found = [];
  for (const match of text.matchAll(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g)) {
    try {
      const payload = JSON.parse(Buffer.from(match[0].split(".")[1], "base64url").toString("utf8"));
      found.push({ token: match[0], payload });
    } catch {
      found.push({ token: match[0], payload: null });
    }
  }
  return found;
}

/** axe-core's source, to evaluate in pages (DevTools evaluation is not subject to the page's CSP). */
export async function axeSource() {
  return readFile(new URL("../node_modules/axe-core/axe.min.js", import.meta.url), "utf8");
}

/** The URL of the wasm's voice loader: LiveKitJs's inline snippet, which wasm-bindgen writes
 *  under app/snippets/<crate>-<hash>/ (the hash changes with the crate, so it is looked up in
 *  the build). Its `loadVoice()` imports app/voice.mjs as the widget does at call start. */
export async function voiceLoaderUrl() {
  const snippets = fileURLToPath(new URL("../dist/app/snippets/", import.meta.url));
  const loaders = [];
  for (const dir of await readdir(snippets)) {
    for (const file of await readdir(join(snippets, dir))) {
      if ((await readFile(join(snippets, dir, file), "utf8")).includes("voice.mjs")) {
        loaders.push(new URL(`/app/snippets/${dir}/${file}`, HOST_URL).href);
      }
    }
  }
  assert.equal(loaders.length, 1, `one snippet loads the voice bundle: ${loaders}`);
  return loaders[0];
}

export { burstWav, fakeMicArgs, sineWav } from "./wav.mjs";

/** Chromium flags for a call against the local LiveKit stand-in: loopback ICE candidates
 *  (Chromium leaves loopback out and hides host addresses behind mDNS names otherwise). */
export const WEBRTC_ARGS = ["--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns"];

/** Init script: keeps every RTCPeerConnection the page makes in window.__peerConnections,
 *  so a test can read their getStats(). */
export function keepPeerConnections() {
  const Native = window.RTCPeerConnection;
  const kept = [];
  Object.defineProperty(window, "__peerConnections", { value: kept });
  window.RTCPeerConnection = class extends Native {
    constructor(...args) {
      super(...args);
      kept.push(this);
    }
  };
}

/** The bytes the page's peer connections have sent as audio (outbound-rtp), summed. */
export function audioBytesSent(page) {
  return page.evaluate(async () => {
    let sent = 0;
    for (const pc of window.__peerConnections ?? []) {
      for (const report of (await pc.getStats()).values()) {
        if (report.type === "outbound-rtp" && report.kind === "audio") sent += report.bytesSent;
      }
    }
    return sent;
  });
}

/** The LiveKit room of the conversation the page started: from the join token in the BFF's
 *  answer to the start. */
export async function roomOf(records, pending) {
  return until(async () => {
    await Promise.all(pending);
    const started = records.find((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/conversations` && r.status === 201);
    return started && jwts(started.body).find((jwt) => jwt.payload?.video?.room)?.payload.video.room;
  }, { message: "a LiveKit join token in the BFF's answer to the start" });
}

/** What the sandbox's LiveKit stand-in saw in `room` (admin route), `null` before a visitor joined. */
export async function roomStats(room) {
  const response = await fetch(`${SANDBOX_URL}/__sandbox/livekit/rooms/${encodeURIComponent(room)}`);
  return response.ok ? response.json() : null;
}
