// End-to-end: the embed contract. The one-tag embed and the element added after load by an
// SPA, attributes reflected and changed (language and agent remount, theme does not), the
// load strategies, and a second copy of the loader on the same page.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENT_ID,
  BFF_URL,
  SECOND_AGENT_ID,
  SECOND_GREETING,
  collectEvents,
  fixture,
  launcher,
  openPage,
  panel,
  until,
  waitForGreeting,
  useBrowser,
} from "./support.mjs";

useBrowser();

const attributes = (page) =>
  page.evaluate(() =>
    [...document.querySelectorAll("speaknode-widget")].map((element) =>
      Object.fromEntries([...element.attributes].map((attribute) => [attribute.name, attribute.value])),
    ),
  );

test("the script tag embeds one widget, its data attributes reflected on the element", async () => {
  const { context, page, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  assert.deepEqual(await attributes(page), [
    {
      "agent-id": AGENT_ID,
      "session-url": BFF_URL,
      theme: "light",
      lang: "en",
      position: "bottom-right",
      load: "intent",
    },
  ]);
  assert.equal(await launcher(page).getAttribute("aria-label"), "Talk to us");
  assert.equal(await page.evaluate(() => typeof window.SpeakNode.open), "function");

  await launcher(page).click();
  await waitForGreeting(page);
  await context.close();
  assert.deepEqual(problems, []);
});

test("a second copy of the loader keeps the first's SpeakNode and element, and embeds its tag once", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html"));
  await page.evaluate(() => {
    window.__first = window.SpeakNode;
    window.__class = customElements.get("speaknode-widget");
  });
  const addCopy = () =>
    page.evaluate(
      ([agentId, bffUrl]) =>
        new Promise((resolve, reject) => {
          const script = document.createElement("script");
          script.src = "/speaknode-widget.js?copy";
          Object.assign(script.dataset, { agentId, sessionUrl: bffUrl, theme: "dark", position: "top-left", mode: "voice", lang: "de", load: "idle" });
          script.onload = resolve;
          script.onerror = reject;
          document.head.append(script);
        }),
      [SECOND_AGENT_ID, BFF_URL],
    );
  await addCopy();
  await addCopy();
  assert.ok(await page.evaluate(() => window.SpeakNode === window.__first && customElements.get("speaknode-widget") === window.__class));
  assert.deepEqual(await attributes(page), [
    { "agent-id": SECOND_AGENT_ID, "session-url": BFF_URL, theme: "dark", position: "top-left", mode: "voice", lang: "de", load: "idle" },
  ]);
  assert.equal(await launcher(page).getAttribute("aria-label"), "Mit uns sprechen");
  await context.close();
  assert.deepEqual(problems, []);
});

test("an SPA adds the widget after load, removes it and adds it again", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html"));
  assert.equal(await page.locator("speaknode-widget").count(), 0, "the home view has no widget");

  await page.getByRole("link", { name: "Help" }).click();
  await launcher(page).click();
  await waitForGreeting(page);

  await page.getByRole("link", { name: "Home" }).click();
  assert.equal(await page.locator("speaknode-widget").count(), 0);

  await page.getByRole("link", { name: "Help" }).click();
  await launcher(page).waitFor();
  assert.equal(await launcher(page).count(), 1, "one launcher, not the old one's as well");
  await context.close();
  assert.deepEqual(problems, []);
});

test("changing lang remounts the widget in the new language, same conversation, panel open", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("spa.html", { view: "help", lang: "en" }));
  await collectEvents(page);
  await launcher(page).click();
  await waitForGreeting(page);
  assert.equal((await page.getByTestId("sn-status").textContent()).trim(), "Connected");
  await Promise.all(pending);
  const before = records.length;

  await page.locator("speaknode-widget").evaluate((element) => element.setAttribute("lang", "de"));
  assert.equal(await launcher(page).getAttribute("aria-label"), "Mit uns sprechen");
  assert.equal(await panel(page).evaluate((element) => element.closest("[lang]").lang), "de");
  await page.getByTestId("sn-status").getByText("Verbunden").waitFor();
  await waitForGreeting(page);
  const readies = await page.evaluate(() => window.__events.filter((e) => e.type === "ready").length);
  assert.equal(readies, 2, "mounted once in English, once in German");
  await Promise.all(pending);
  // A mint or a start; the token renewal that brings a resumed call's join grant is part of
  // resuming.
  const started = records
    .slice(before)
    .filter((r) => r.method === "POST" && (r.url === `${BFF_URL}/v1/sessions` || r.url === `${BFF_URL}/v1/conversations`));
  assert.deepEqual(started.map((r) => r.url), [], "the remount resumed the conversation instead of starting one");
  await context.close();
  assert.deepEqual(problems, []);
});

test("changing agent-id remounts the widget for the other agent, still open, starting only when asked", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html", { view: "help" }));
  await launcher(page).click();
  await waitForGreeting(page);
  assert.equal((await page.getByTestId("sn-agent-name").textContent()).trim(), "Ava");

  await page.locator("speaknode-widget").evaluate((element, id) => {
    element.agentId = id;
  }, SECOND_AGENT_ID);
  // The panel stays open; a conversation (with a microphone, soon) starts only from the
  // visitor's own action, never from a page's attribute change.
  const start = page.getByTestId("sn-start");
  await start.waitFor();
  assert.equal(await panel(page).isVisible(), true);
  await start.click();
  await waitForGreeting(page, SECOND_GREETING);
  assert.equal((await page.getByTestId("sn-agent-name").textContent()).trim(), "Max");
  await context.close();
  assert.deepEqual(problems, []);
});

test("position puts the widget in its corner and theme recolours it, neither remounting", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html", { view: "help" }));
  await collectEvents(page);
  await launcher(page).click();
  await waitForGreeting(page);
  const element = page.locator("speaknode-widget");
  const edges = () =>
    element.evaluate((widget) => {
      const box = widget.getBoundingClientRect();
      return { left: box.left, top: box.top, right: innerWidth - box.right, bottom: innerHeight - box.bottom };
    });
  // The default corner is the page's inline end at the bottom (bottom right here).
  const offset = 20;
  const near = (value) => Math.abs(value - offset) < 1;
  let at = await edges();
  assert.ok(near(at.right) && near(at.bottom), `default corner: ${JSON.stringify(at)}`);
  for (const [position, [x, y]] of Object.entries({
    "bottom-left": ["left", "bottom"],
    "top-right": ["right", "top"],
    "top-left": ["left", "top"],
    "bottom-right": ["right", "bottom"],
  })) {
    await element.evaluate((widget, value) => (widget.position = value), position);
    at = await edges();
    assert.ok(near(at[x]) && near(at[y]), `${position}: ${JSON.stringify(at)}`);
  }

  const accent = () => launcher(page).evaluate((button) => getComputedStyle(button).backgroundColor);
  assert.equal(await accent(), "rgb(67, 56, 202)", "light accent");
  await element.evaluate((widget) => (widget.theme = "dark"));
  assert.equal(await accent(), "rgb(165, 180, 252)", "dark accent");
  assert.equal(await element.evaluate((widget) => widget.getAttribute("theme")), "dark");

  await waitForGreeting(page);
  const types = await page.evaluate(() => window.__events.map((e) => e.type));
  assert.equal(types.filter((type) => type === "ready").length, 1, `no remount: ${types}`);
  await context.close();
  assert.deepEqual(problems, []);
});

test("the launcher before the app loads is the app's own, in every language and mode", async () => {
  const launcherLooks = (page) =>
    launcher(page).evaluate((button) => ({
      attributes: Object.fromEntries(
        [...button.attributes].filter((a) => a.name !== "style").map((a) => [a.name, a.value]),
      ),
      icon: button.querySelector("svg path")?.getAttribute("d"),
      svg: Object.fromEntries([...button.querySelector("svg").attributes].map((a) => [a.name, a.value])),
    }));
  for (const params of [{ lang: "en" }, { lang: "de" }, { lang: "ar" }, { lang: "en", mode: "text" }, { lang: "en", mode: "voice" }]) {
    const { context, page, problems } = await openPage(fixture("spa.html", { view: "help", ...params }));
    await collectEvents(page);
    const before = await launcherLooks(page);
    // load="eager" mounts the app without opening it.
    await page.locator("speaknode-widget").evaluate((element) => element.setAttribute("load", "eager"));
    await until(() => page.evaluate(() => window.__events.some((e) => e.type === "ready")), { message: "the app's mount" });
    assert.deepEqual(await launcherLooks(page), before, `${JSON.stringify(params)}: the app's launcher equals the loader's`);
    await context.close();
    assert.deepEqual(problems, []);
  }
});

test("load=eager and load=idle load and mount the app without any intent", async () => {
  for (const load of ["eager", "idle"]) {
    const { context, page, records, pending, problems } = await openPage(fixture("spa.html", { view: "help", load }));
    await until(() => page.evaluate(() => document.querySelector("speaknode-widget").shadowRoot.querySelector(".sn-root") !== null), {
      message: `the ${load} mount`,
    });
    await Promise.all(pending);
    assert.ok(!records.some((r) => r.url.startsWith(BFF_URL)), `${load}: mounting alone asks the BFF nothing`);
    await context.close();
    assert.deepEqual(problems, []);
  }
});

test("keyboard focus on the launcher stays on the launcher when the app replaces it", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html", { view: "help" }));
  await collectEvents(page);
  await launcher(page).waitFor();
  // Tab from the page's last link onto the launcher (focus also starts loading the app).
  await page.getByRole("link", { name: "Help" }).focus();
  await page.keyboard.press("Tab");
  const placeholder = await page.locator("speaknode-widget").evaluateHandle((element) => element.shadowRoot.activeElement);
  assert.equal(await placeholder.evaluate((node) => node?.dataset.testid), "sn-launcher", "the launcher has focus");
  await page.locator("speaknode-widget").evaluate((element) => element.setAttribute("load", "eager"));
  await until(() => page.evaluate(() => window.__events.some((e) => e.type === "ready")), { message: "the app's mount" });
  const focused = await page.locator("speaknode-widget").evaluate((element, old) => {
    const active = element.shadowRoot.activeElement;
    return { replaced: active !== old && !old.isConnected, testid: active?.dataset.testid, inApp: !!active?.closest(".sn-root") };
  }, placeholder);
  assert.deepEqual(focused, { replaced: true, testid: "sn-launcher", inApp: true });
  await context.close();
  assert.deepEqual(problems, []);
});
