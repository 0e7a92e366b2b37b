// End-to-end: the widget leaves nothing behind. After destroy() or the element's removal the
// shadow root is empty and the page has no timer, idle callback, animation frame, fetch,
// EventSource or network request of the widget's left, and no listener on window or document;
// a removal while the app is still loading does nothing later. Counts come from an init
// script that wraps the browser's APIs before any page script runs (support.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import { BFF_URL, fixture, globalListeners, idle, launcher, liveWork, openPage, until, waitForGreeting, useBrowser } from "./support.mjs";

useBrowser();

/** Waits until nothing of the widget runs any more, then checks listeners and the page. */
async function assertNothingLeft(page, open, element, baseline) {
  await until(() => element.evaluate((widget) => widget.shadowRoot.childNodes.length === 0 && widget.shadowRoot.adoptedStyleSheets.length === 0), {
    message: "an empty shadow root",
  });
  await until(async () => {
    const work = await liveWork(page);
    return idle(work) && open.size === 0 && work;
  }, {
    timeout: 20_000,
    message: "no live timers, frames, fetches, streams or requests",
  }).catch(async (error) => {
    const requests = [...open].map((request) => request.url());
    throw new Error(`${error.message}\nstill running: ${JSON.stringify(await liveWork(page))}, requests ${JSON.stringify(requests)}`);
  });
  assert.deepEqual(await globalListeners(page), baseline, "window and document have the listeners they had before the widget");
}

test("removing the element (an SPA leaving the view) stops everything", async () => {
  const { context, page, open, problems } = await openPage(fixture("spa.html"), { instrument: true });
  const baseline = await globalListeners(page);
  assert.ok(baseline.window.includes("popstate @ /fixtures/spa.js"), `the listing sees the page's own listeners: ${JSON.stringify(baseline)}`);
  await page.getByRole("link", { name: "Help" }).click();
  await launcher(page).click();
  await waitForGreeting(page);
  const element = await page.locator("speaknode-widget").elementHandle();

  await page.getByRole("link", { name: "Home" }).click();
  await assertNothingLeft(page, open, element, baseline);
  await context.close();
  assert.deepEqual(problems, []);
});

test("SpeakNode.destroy() stops everything and removes the widget", async () => {
  const { context, page, open, problems } = await openPage(fixture("embed.html"), { instrument: true });
  await launcher(page).waitFor();
  const baseline = await globalListeners(page);
  await launcher(page).click();
  await waitForGreeting(page);
  const element = await page.locator("speaknode-widget").elementHandle();

  await page.evaluate(() => window.SpeakNode.destroy());
  assert.equal(await page.locator("speaknode-widget").count(), 0);
  await assertNothingLeft(page, open, element, baseline);
  await context.close();
  assert.deepEqual(problems, []);
});

test("an element removed while the app loads never mounts or talks to the BFF", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("spa.html", { view: "help" }));
  await launcher(page).waitFor();
  // open() starts the load; the removal comes before the app can arrive.
  const first = await page.locator("speaknode-widget").evaluateHandle((element) => {
    element.open();
    element.remove();
    return element;
  });
  // A second widget waits for the same load; once it has mounted, the first one's callbacks
  // (registered earlier on the same promise) have run.
  await page.evaluate(() => {
    window.__ready = false;
    const second = document.createElement("speaknode-widget");
    second.setAttribute("agent-id", "00000000-0000-4000-8000-000000000000");
    second.setAttribute("session-url", "/nowhere");
    second.setAttribute("load", "eager");
    second.addEventListener("speaknode:ready", () => (window.__ready = true));
    document.body.append(second);
  });
  await until(() => page.evaluate(() => window.__ready), { message: "the second widget's mount" });
  assert.equal(await first.evaluate((element) => element.shadowRoot.childNodes.length), 0);
  await Promise.all(pending);
  assert.deepEqual(records.filter((r) => r.url.startsWith(BFF_URL)).map((r) => r.url), []);
  await context.close();
  assert.deepEqual(problems, []);
});
