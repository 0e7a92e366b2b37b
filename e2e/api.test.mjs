// End-to-end: the JavaScript API. window.SpeakNode's on() with and without the "speaknode:"
// prefix and its unsubscribe, open/close/start acting on the page's widget, the events in the
// order a conversation produces them, and calls made before the app has loaded (or before the
// element is on the page) being honoured.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AGENT_ID, BFF_URL, GREETING, afterFrames, collectEvents, fixture, launcher, openPage, panel, until, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

const STATUS_ORDER = ["Connecting", "Pending", "Dispatching", "Active"];

test("SpeakNode.on() reports the events in order, with detail and event, until unsubscribed", async () => {
  const { context, page, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  await page.evaluate(() => {
    window.__seen = [];
    const record = (name) => (detail, event) => window.__seen.push({ name, type: event.type, detail });
    window.__stop = {};
    for (const name of ["ready", "open", "status", "message", "speaknode:close", "error", "ended"]) {
      window.__stop[name] = window.SpeakNode.on(name, record(name));
    }
    // Before the app has loaded: open() loads it.
    window.SpeakNode.open();
  });
  await waitForGreeting(page);
  await afterFrames(page);
  await page.evaluate(() => window.SpeakNode.close());
  await panel(page).waitFor({ state: "detached" });
  const seen = await page.evaluate(() => window.__seen);

  for (const event of seen) {
    const expected = event.name.startsWith("speaknode:") ? event.name : `speaknode:${event.name}`;
    assert.equal(event.type, expected, "the callback gets the event as its second argument");
  }
  const names = seen.map((e) => e.name);
  assert.deepEqual(names.slice(0, 3), ["ready", "open", "status"], names.join());
  assert.equal(names.at(-1), "speaknode:close", names.join());
  assert.ok(!names.includes("error") && !names.includes("ended"), names.join());
  const statuses = seen.filter((e) => e.name === "status").map((e) => e.detail.status);
  assert.equal(statuses[0], "Connecting");
  assert.equal(statuses.at(-1), "Active");
  assert.deepEqual(statuses, STATUS_ORDER.filter((s) => statuses.includes(s)), `statuses in order: ${statuses}`);
  const greeting = seen.find((e) => e.name === "message");
  assert.equal(greeting.detail.role, "agent");
  assert.equal(greeting.detail.text, GREETING);
  assert.equal(typeof greeting.detail.id, "string");
  assert.ok(names.indexOf("message") > names.indexOf("status"), "the greeting comes after the first status");

  // Unsubscribed callbacks hear nothing more.
  await page.evaluate(() => {
    window.__seen = [];
    window.__stop.open();
    window.__stop["speaknode:close"]();
    window.SpeakNode.open();
  });
  await panel(page).waitFor();
  await afterFrames(page);
  await page.evaluate(() => window.SpeakNode.close());
  await panel(page).waitFor({ state: "detached" });
  assert.deepEqual(await page.evaluate(() => window.__seen.map((e) => e.name)), []);
  await context.close();
  assert.deepEqual(problems, []);
});

test("open() then close() before the app loads leaves it closed and starts nothing; start() starts", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  const ready = page.evaluate(() => new Promise((resolve) => window.SpeakNode.on("ready", resolve)));
  await page.evaluate(() => {
    window.SpeakNode.open();
    return window.SpeakNode.close();
  });
  await ready;
  await Promise.all(pending);
  assert.equal(await panel(page).count(), 0, "the panel stays closed");
  assert.equal(await launcher(page).getAttribute("aria-expanded"), "false");
  assert.deepEqual(records.filter((r) => r.url.startsWith(BFF_URL)).map((r) => r.url), [], "no conversation started");

  await page.evaluate(() => window.SpeakNode.start());
  await until(async () => {
    await Promise.all(pending);
    return records.some((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/conversations` && r.status === 201);
  }, { message: "the conversation's start" });
  assert.equal(await panel(page).count(), 0, "start() does not open the panel");
  await page.evaluate(() => window.SpeakNode.open());
  await waitForGreeting(page);
  await context.close();
  assert.deepEqual(problems, []);
});

test("an element's open() before it is on the page opens it once it is", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html"));
  // With no widget on the page, the global's calls do nothing and do not fail.
  await page.evaluate(() => Promise.all([window.SpeakNode.open(), window.SpeakNode.end(), window.SpeakNode.close()]));
  await page.evaluate(
    ([agentId, bffUrl]) => {
      const element = document.createElement("speaknode-widget");
      element.open();
      element.agentId = agentId;
      element.sessionUrl = bffUrl;
      document.body.append(element);
    },
    [AGENT_ID, BFF_URL],
  );
  await waitForGreeting(page);
  await context.close();
  assert.deepEqual(problems, []);
});

test("a page's tokenProvider is asked at the start and again on the retry after it failed", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("spa.html"));
  await page.evaluate((bffUrl) => {
    window.__asked = [];
    // The site's own token endpoint, here the BFF's mint; down the first time.
    window.SpeakNode.tokenProvider = async (request) => {
      window.__asked.push(request);
      if (window.__asked.length === 1) throw new Error("the site's token endpoint is down");
      const response = await fetch(`${bffUrl}/v1/sessions`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-speaknode-widget": "1" },
        body: JSON.stringify({ agent_id: request.agentId }),
      });
      const grant = await response.json();
      return { token: grant.token, expiresAt: grant.expires_at, agent: grant.agent };
    };
  }, BFF_URL);
  // The element comes later and has no provider of its own: the global one serves it.
  await page.getByRole("link", { name: "Help" }).click();
  await launcher(page).click();
  await page.locator('[data-testid="sn-status"][data-phase^="error"]').waitFor();
  await page.getByTestId("sn-start").click();
  await waitForGreeting(page);

  assert.deepEqual(await page.evaluate(() => window.__asked), [
    { agentId: AGENT_ID, reason: "start" },
    { agentId: AGENT_ID, reason: "retry" },
  ]);
  await Promise.all(pending);
  const mints = records.filter((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/sessions`);
  assert.equal(mints.length, 1, "the widget minted only through the provider (whose second call minted once)");
  await context.close();
  assert.deepEqual(problems, []);
});

test("an element's own tokenProvider wins over the global one", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html"));
  await page.evaluate(
    ([agentId, bffUrl]) => {
      window.__asked = [];
      const mint = async (request) => {
        const response = await fetch(`${bffUrl}/v1/sessions`, {
          method: "POST",
          headers: { "content-type": "application/json", "x-speaknode-widget": "1" },
          body: JSON.stringify({ agent_id: request.agentId }),
        });
        const grant = await response.json();
        return { token: grant.token, expiresAt: grant.expires_at, agent: grant.agent };
      };
      window.SpeakNode.tokenProvider = (request) => {
        window.__asked.push(["global", request.reason]);
        return mint(request);
      };
      const element = document.createElement("speaknode-widget");
      element.agentId = agentId;
      element.sessionUrl = bffUrl;
      element.tokenProvider = (request) => {
        window.__asked.push(["own", request.reason]);
        return mint(request);
      };
      document.body.append(element);
    },
    [AGENT_ID, BFF_URL],
  );
  await launcher(page).click();
  await waitForGreeting(page);
  assert.deepEqual(await page.evaluate(() => window.__asked), [["own", "start"]]);
  await context.close();
  assert.deepEqual(problems, []);
});

test("SpeakNode calls made before <body> exists act once the tag's widget is on the page", async () => {
  const opened = await openPage(fixture("head.html"));
  await waitForGreeting(opened.page);
  await opened.context.close();
  assert.deepEqual(opened.problems, []);

  // destroy() before <body>: the widget never appears and nothing of the app loads.
  const destroyed = await openPage(fixture("head.html", { action: "destroy" }));
  await Promise.all(destroyed.pending);
  assert.equal(await destroyed.page.locator("speaknode-widget").count(), 0);
  assert.deepEqual(destroyed.records.filter((r) => r.url.includes("/app/")).map((r) => r.url), []);
  await destroyed.context.close();
  assert.deepEqual(destroyed.problems, []);
});

test("SpeakNode.end() ends the conversation: Completed, then ended, last of all", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).click();
  await waitForGreeting(page);
  await collectEvents(page);
  await page.evaluate(() => window.SpeakNode.end());
  await page.locator('[data-testid="sn-status"][data-phase="completed"]').waitFor({ timeout: 10_000 });
  await until(() => page.evaluate(() => window.__events.some((e) => e.type === "ended")), { message: "the ended event" });
  const events = await page.evaluate(() => window.__events);
  assert.deepEqual(events.at(-1), { type: "ended", detail: { status: "Completed" } });
  assert.deepEqual(events.at(-2), { type: "status", detail: { status: "Completed" } });
  await Promise.all(pending);
  assert.ok(records.some((r) => r.method === "POST" && /\/v1\/conversations\/[^/]+\/end$/.test(r.url) && r.status === 200), "the BFF ended it");
  assert.equal(await page.evaluate((key) => sessionStorage.getItem(key), `speaknode-widget:${AGENT_ID}`), null, "nothing left to resume");
  await context.close();
  assert.deepEqual(problems, []);
});
