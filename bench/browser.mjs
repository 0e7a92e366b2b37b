// The browser part of `cargo xtask bench` (`--only browser`): cold visits of the one-tag embed
// page (e2e/pages/embed.html) in headless Chromium against the local stack, each in a fresh
// context (empty cache), measuring from inside the page:
//   - the loader's first statement (its performance mark) to the launcher painted;
//   - long tasks (PerformanceObserver "longtask") while the page loads, and from the first
//     click while the app loads and mounts;
//   - the click to the panel painted, and to the conversation Active against the sandbox
//     (the status element's data-phase="active").
// Then as many call starts (`call_start`), in a browser with a fake microphone, each a fresh
// context: from the click on the launcher that starts the conversation and its call,
//   - the time to the call connected to the agent (data-call="connected") and to the first
//     meter frame with the agent's level at or above AGENT_LEVEL (the agent heard);
//   - the bytes of every HTTP response to a request made after the click until the agent is
//     heard, decoded ("raw") and as received ("encoded", headers included), with
//     app/voice.mjs apart; the signalling WebSocket and the media are not HTTP responses and
//     are not counted.
// Writes every run and the medians as JSON to the path in SN_BENCH_OUT; xtask adds the byte
// counts, writes target/bench/browser.json and prints the table.
import { writeFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { WEBRTC_ARGS, env, fakeMicArgs, fixture, launchChromium, sineWav, until } from "../e2e/support.mjs";

const RUNS = Number(process.env.SN_BENCH_RUNS ?? 7);

/** Init script: observes long tasks, and the widget's shadow root for the launcher, the panel
 *  and the Active status, recording when each was inserted and then painted. */
function observe() {
  const m = { longTasks: [], launcherPainted: null, click: null, panelPainted: null, active: null };
  Object.defineProperty(window, "__bench", { value: m });
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) m.longTasks.push({ start: entry.startTime, duration: entry.duration });
  }).observe({ type: "longtask", buffered: true });
  // After the next frame has been rendered: a task queued from requestAnimationFrame runs
  // once that frame's paint has been issued.
  const afterPaint = (record) =>
    requestAnimationFrame(() => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => record(performance.now());
      channel.port2.postMessage(null);
    });
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    if (this.localName !== "speaknode-widget") return root;
    let launcherSeen = false;
    let panelSeen = false;
    new MutationObserver(() => {
      if (!launcherSeen && root.adoptedStyleSheets.length > 0 && root.querySelector(".sn-launcher")) {
        launcherSeen = true;
        afterPaint((time) => (m.launcherPainted = time));
      }
      if (m.click !== null && !panelSeen && root.querySelector('[data-testid="sn-panel"]')) {
        panelSeen = true;
        afterPaint((time) => (m.panelPainted = time));
      }
      if (m.click !== null && m.active === null && root.querySelector('[data-testid="sn-status"][data-phase="active"]')) {
        m.active = performance.now();
      }
    }).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-phase"] });
    return root;
  };
  document.addEventListener("click", (event) => (m.click ??= event.timeStamp), true);
}

async function visit(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.addInitScript(observe);
  await page.goto(fixture("embed.html"));
  await page.waitForLoadState("networkidle");
  await until(() => page.evaluate(() => window.__bench.launcherPainted !== null), { message: "the launcher painted" });
  await page.getByTestId("sn-launcher").click();
  await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor({ timeout: 30_000 });
  await until(() => page.evaluate(() => window.__bench.panelPainted !== null && window.__bench.active !== null), {
    message: "the panel painted and Active seen",
  });
  const m = await page.evaluate(() => ({
    ...window.__bench,
    loaderStart: performance.getEntriesByName("speaknode-widget:loader")[0]?.startTime ?? null,
  }));
  // The instrument's own check: an 80 ms task of the page's must show up as a long task, or
  // "no long task" above would mean nothing.
  const seen = m.longTasks.length;
  await page.evaluate(
    () =>
      new Promise((resolve) =>
        setTimeout(() => {
          const start = performance.now();
          while (performance.now() - start < 80);
          resolve();
        }),
      ),
  );
  await until(() => page.evaluate((seen) => window.__bench.longTasks.slice(seen).some((task) => task.duration >= 80), seen), {
    message: "the long-task observer to report an 80 ms task",
  });
  await context.close();
  if (m.loaderStart === null) throw new Error("the loader left no performance mark");
  const tasks = (from, to) => m.longTasks.filter((task) => task.start >= from && task.start < to);
  const summary = (list) => ({ count: list.length, longest_ms: Math.max(0, ...list.map((task) => task.duration)) });
  return {
    loader_start_ms: m.loaderStart,
    launcher_paint_ms: m.launcherPainted - m.loaderStart,
    launcher_paint_from_navigation_ms: m.launcherPainted,
    page_load_long_tasks: summary(tasks(0, m.click)),
    app_load_long_tasks: summary(tasks(m.click, m.active)),
    click_to_panel_ms: m.panelPainted - m.click,
    click_to_active_ms: m.active - m.click,
  };
}

/** The agent meter's level (0–100) that counts as the agent heard. */
const AGENT_LEVEL = 10;

/** Init script: the time of the first click, of the call connected, and of the first meter
 *  frame with the agent at or above `threshold`, seen from inside the widget's shadow root. */
function observeCall(threshold) {
  const m = { click: null, connected: null, heard: null, level: null };
  Object.defineProperty(window, "__call", { value: m });
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    if (this.localName !== "speaknode-widget") return root;
    new MutationObserver(() => {
      if (m.click === null) return;
      if (m.connected === null && root.querySelector('[data-testid="sn-call"][data-call="connected"]')) m.connected = performance.now();
      const level = Number(root.querySelector('[data-testid="sn-meter-agent"]')?.dataset.level ?? 0);
      if (m.heard === null && level >= threshold) {
        m.heard = performance.now();
        m.level = level;
      }
    }).observe(root, { childList: true, subtree: true, attributes: true, attributeFilter: ["data-level", "data-call"] });
    return root;
  };
  document.addEventListener("click", (event) => (m.click ??= event.timeStamp), true);
}

/** One call start in a fresh context: timings and the bytes the call start fetched. */
async function callStart(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await page.addInitScript(observeCall, AGENT_LEVEL);
  await page.goto(fixture("embed.html"));
  await page.waitForLoadState("networkidle");
  await page.getByTestId("sn-launcher").waitFor();
  // Every HTTP response from here on (the page is idle), by DevTools' own byte counts.
  const devtools = await context.newCDPSession(page);
  await devtools.send("Network.enable");
  const requests = new Map();
  devtools.on("Network.requestWillBeSent", ({ requestId, request }) =>
    requests.set(requestId, { url: request.url, method: request.method, raw: 0, streamed: 0, encoded: null, stream: false }),
  );
  devtools.on("Network.responseReceived", ({ requestId, response }) => {
    const request = requests.get(requestId);
    if (request) request.stream = response.mimeType === "text/event-stream";
  });
  devtools.on("Network.dataReceived", ({ requestId, dataLength, encodedDataLength }) => {
    const request = requests.get(requestId);
    if (!request) return;
    request.raw += dataLength;
    request.streamed += encodedDataLength;
  });
  devtools.on("Network.loadingFinished", ({ requestId, encodedDataLength }) => {
    const request = requests.get(requestId);
    if (request) request.encoded = encodedDataLength;
  });
  await page.getByTestId("sn-launcher").click();
  await until(() => page.evaluate(() => window.__call.heard !== null), { timeout: 30_000, message: "the agent heard" });
  const m = await page.evaluate(() => window.__call);
  // Responses still arriving when the agent was heard belong to the call start too (their
  // requests were made before): wait for them to finish, except the conversation's event
  // stream (open for the conversation's life; counted as received so far) and CORS
  // preflights (DevTools reports no bytes for them).
  const pending = () =>
    [...requests.values()].filter((r) => /^https?:/.test(r.url) && r.encoded === null && !r.stream && r.method !== "OPTIONS");
  await until(() => pending().length === 0, { timeout: 10_000, message: "the call start's responses finished" }).catch((error) => {
    throw new Error(`${error.message}: ${pending().map((r) => r.url)}`);
  });
  for (const request of requests.values()) request.encoded ??= request.streamed;
  await context.close();
  const http = [...requests.values()].filter((request) => /^https?:/.test(request.url));
  const voice = http.filter((request) => new URL(request.url).pathname === "/app/voice.mjs");
  const total = (list, key) => list.reduce((sum, request) => sum + request[key], 0);
  return {
    click_to_connected_ms: m.connected - m.click,
    click_to_agent_heard_ms: m.heard - m.click,
    agent_level_heard: m.level,
    requests: http.length,
    bytes_raw: total(http, "raw"),
    bytes_encoded: total(http, "encoded"),
    voice_mjs_raw: total(voice, "raw"),
    voice_mjs_encoded: total(voice, "encoded"),
    urls: http.map((request) => `${request.url.split("?")[0]} ${request.raw}/${request.encoded}`),
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value) => Math.round(value * 10) / 10;
const stats = (values) => ({ median: round(median(values)), min: round(Math.min(...values)), max: round(Math.max(...values)) });

const browser = await launchChromium();
const runs = [];
try {
  for (let run = 0; run < RUNS; run += 1) runs.push(await visit(browser));
} finally {
  await browser.close();
}
const result = {
  runs: RUNS,
  launcher_paint_ms: stats(runs.map((r) => r.launcher_paint_ms)),
  launcher_paint_from_navigation_ms: stats(runs.map((r) => r.launcher_paint_from_navigation_ms)),
  page_load_long_tasks: {
    count: stats(runs.map((r) => r.page_load_long_tasks.count)),
    longest_ms: stats(runs.map((r) => r.page_load_long_tasks.longest_ms)),
  },
  app_load_long_tasks: {
    count: stats(runs.map((r) => r.app_load_long_tasks.count)),
    longest_ms: stats(runs.map((r) => r.app_load_long_tasks.longest_ms)),
  },
  click_to_panel_ms: stats(runs.map((r) => r.click_to_panel_ms)),
  click_to_active_ms: stats(runs.map((r) => r.click_to_active_ms)),
  samples: runs,
};

// Call starts: a fake microphone (a looped 440 Hz WAV) allowed without a prompt, and no
// autoplay flag: the launcher click is the gesture that lets the agent play, as for a visitor.
const workDir = await mkdtemp(path.join(tmpdir(), "speaknode-bench-"));
const wav = path.join(workDir, "mic-440.wav");
await writeFile(wav, sineWav(440, 5));
const callBrowser = await launchChromium([
  ...fakeMicArgs(wav),
  ...WEBRTC_ARGS,
]);
const calls = [];
try {
  for (let run = 0; run < RUNS; run += 1) calls.push(await callStart(callBrowser));
} finally {
  await callBrowser.close();
  await rm(workDir, { recursive: true, force: true });
}
result.call_start = {
  runs: RUNS,
  agent_level: AGENT_LEVEL,
  click_to_connected_ms: stats(calls.map((c) => c.click_to_connected_ms)),
  click_to_agent_heard_ms: stats(calls.map((c) => c.click_to_agent_heard_ms)),
  requests: stats(calls.map((c) => c.requests)),
  bytes_raw: stats(calls.map((c) => c.bytes_raw)),
  bytes_encoded: stats(calls.map((c) => c.bytes_encoded)),
  voice_mjs_raw: stats(calls.map((c) => c.voice_mjs_raw)),
  voice_mjs_encoded: stats(calls.map((c) => c.voice_mjs_encoded)),
  samples: calls,
};
await writeFile(env("SN_BENCH_OUT"), JSON.stringify(result, null, 2));
