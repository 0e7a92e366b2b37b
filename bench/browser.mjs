// The browser part of `cargo xtask bench` (`--only browser`): cold visits of the one-tag embed
// page (e2e/pages/embed.html) in headless Chromium against the local stack, each in a fresh
// context (empty cache), measuring from inside the page:
//   - the loader's first statement (its performance mark) to the launcher painted;
//   - long tasks (PerformanceObserver "longtask") while the page loads, and from the first
//     click while the app loads and mounts;
//   - the click to the panel painted, and to the conversation Active against the sandbox
//     (the status element's data-phase="active").
// Writes every run and the medians as JSON to the path in SN_BENCH_OUT; xtask adds the byte
// counts, writes target/bench/browser.json and prints the table.
import { writeFile } from "node:fs/promises";
import { env, fixture, launchChromium, until } from "../e2e/support.mjs";

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
await writeFile(env("SN_BENCH_OUT"), JSON.stringify(result, null, 2));
