// End-to-end: a conversation outlives the page it started on. A reload, a move to another
// page of the site and an SPA view change all continue the same conversation (same id, same
// transcript, the panel as the visitor left it) without a new start; a network drop ends with
// exactly the transcript the BFF holds.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENT_ID,
  BFF_URL,
  HOST_URL,
  LIVEKIT_URL,
  conversationId,
  cuttableProxy,
  fixture,
  launchChromium,
  launcher,
  openPage,
  panel,
  say,
  transcript,
  until,
  useBrowser,
  waitForGreeting,
} from "./support.mjs";

useBrowser();

const ORDER_REPLY = "Your order A-1001 has shipped and arrives tomorrow.";
const DEFAULT_REPLY = "I can help with orders. What's your order number?";

/** The conversation the tab has saved for the demo agent (the app's resume record). */
const saved = (page) => page.evaluate((key) => JSON.parse(sessionStorage.getItem(key)), `speaknode-widget:${AGENT_ID}`);

/** Starts a conversation on the current page and has one exchange in it; returns its id and
 *  the transcript the visitor sees. */
async function converse(page, records, pending) {
  await launcher(page).click();
  await waitForGreeting(page);
  const id = await conversationId(records, pending);
  await say(id, "Where is my order?");
  await page.getByTestId("sn-transcript").getByText(ORDER_REPLY).waitFor({ timeout: 10_000 });
  return { id, turns: await transcript(page) };
}

/** Requests made since `from` (an index into records) that start a conversation or mint. */
async function starts(records, pending, from) {
  await Promise.all(pending);
  return records
    .slice(from)
    .filter((r) => r.method === "POST" && (r.url === `${BFF_URL}/v1/sessions` || r.url === `${BFF_URL}/v1/conversations`))
    .map((r) => r.url);
}

test("a reload continues the conversation, panel open, without starting another", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  const { id, turns } = await converse(page, records, pending);
  assert.equal((await saved(page)).conversationId, id);
  const before = records.length;

  await page.reload();
  // No hover, no click: the stored conversation loads the app at once and reopens the panel.
  await panel(page).waitFor();
  await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(turns) && (await transcript(page)), {
    message: "the same transcript after the reload",
  });
  await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor();
  assert.equal((await saved(page)).conversationId, id);
  assert.deepEqual(await starts(records, pending, before), [], "no new mint or start");

  // The conversation goes on where it was.
  await say(id, "Thanks, bye");
  await page.getByTestId("sn-transcript").getByText("Thanks for calling. Goodbye!").waitFor({ timeout: 10_000 });
  await page.locator('[data-testid="sn-status"][data-phase="completed"]').waitFor({ timeout: 10_000 });
  await context.close();
  assert.deepEqual(problems, []);
});

test("another page of the site continues the conversation, with the panel closed as it was left", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  const { id, turns } = await converse(page, records, pending);
  await launcher(page).click();
  await panel(page).waitFor({ state: "detached" });
  const before = records.length;

  await page.getByRole("link", { name: "Orders" }).click();
  await page.waitForURL(/second\.html$/);
  await until(() => page.evaluate(() => document.querySelector("speaknode-widget")?.shadowRoot?.querySelector(".sn-root") != null), {
    message: "the app mounted at once on the second page",
  });
  assert.equal(await panel(page).count(), 0, "the panel stays closed");
  assert.equal(await launcher(page).getAttribute("aria-expanded"), "false");

  await launcher(page).click();
  await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(turns), { message: "the same transcript on the second page" });
  assert.equal((await saved(page)).conversationId, id);
  assert.deepEqual(await starts(records, pending, before), [], "no new mint or start");
  await context.close();
  assert.deepEqual(problems, []);
});

test("an SPA that removes the widget and adds it back continues the conversation", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("spa.html"));
  await page.getByRole("link", { name: "Help" }).click();
  const { id, turns } = await converse(page, records, pending);
  const before = records.length;

  await page.getByRole("link", { name: "Home" }).click();
  assert.equal(await page.locator("speaknode-widget").count(), 0);
  await page.getByRole("link", { name: "Help" }).click();
  await panel(page).waitFor();
  await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(turns), { message: "the same transcript after the view change" });
  assert.equal((await saved(page)).conversationId, id);
  assert.deepEqual(await starts(records, pending, before), [], "no new mint or start");
  await context.close();
  assert.deepEqual(problems, []);
});

/** The conversation as the BFF holds it, read with the tab's token. */
async function fromBff(token, id) {
  const response = await fetch(`${BFF_URL}/v1/conversations/${id}`, {
    headers: { authorization: `Bearer ${token}`, origin: HOST_URL, "x-speaknode-widget": "1" },
  });
  assert.equal(response.status, 200, await response.clone().text());
  const view = await response.json();
  return view.history.map((turn) => [turn.role === "user" ? "user" : "agent", turn.text]);
}

test("after a network drop the transcript is exactly the BFF's", async () => {
  // A browser of its own, behind a proxy that can cut its connections.
  const proxy = await cuttableProxy();
  const browser = await launchChromium(proxy.args);
  try {
    const { context, page, records, pending, problems, failed } = await openPage(fixture("embed.html"), { browser });
    const { id } = await converse(page, records, pending);

    // The visitor's connection drops; the conversation goes on without the page.
    proxy.drop();
    await until(() => failed.some((request) => request.url().includes(`/v1/conversations/${id}/events`)), {
      message: "the event stream broken by the drop",
    });
    // One turn at a time: the agent's replies to turns said together may land in any order.
    const { token } = await saved(page);
    const exchange = async (text, reply) => {
      const before = (await fromBff(token, id)).length;
      await say(id, text);
      return until(
        async () => {
          const turns = await fromBff(token, id);
          return turns.length >= before + 2 && turns.at(-1)[1] === reply && turns;
        },
        { message: `the agent's answer to "${text}" at the BFF` },
      );
    };
    await exchange("Hello?", DEFAULT_REPLY);
    const expected = await exchange("My order number is A-1001, where is my order?", ORDER_REPLY);
    assert.notDeepEqual(await transcript(page), expected, "the page missed the turns while it was offline");
    proxy.restore();

    await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(expected), {
      timeout: 30_000,
      message: "the widget's transcript to equal the BFF's",
    });
    await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor();
    await context.close();
    // Chromium reports the BFF requests the drop broke, and the call's signalling
    // WebSocket that livekit-client tried to reopen through the cut proxy; nothing else may
    // go wrong.
    const broken = (problem) =>
      (problem.includes("Failed to load resource: net::ERR_") && problem.includes(`(${BFF_URL}/`)) ||
      (problem.startsWith(`console error: WebSocket connection to '${LIVEKIT_URL}/rtc`) && problem.includes("failed: "));
    assert.deepEqual(problems.filter((problem) => !broken(problem)), []);
  } finally {
    await browser.close();
    await proxy.close();
  }
});

test("a page that calls SpeakNode.open() at once on every load resumes rather than restarts", async () => {
  // head.html calls SpeakNode.open() from <head>, before the widget exists.
  const { context, page, records, pending, problems } = await openPage(fixture("head.html"));
  await waitForGreeting(page);
  const id = await conversationId(records, pending);
  const turns = await transcript(page);
  const before = records.length;

  await page.reload();
  await panel(page).waitFor();
  await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(turns), { message: "the same transcript after the reload" });
  await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor();
  assert.equal((await saved(page)).conversationId, id);
  assert.deepEqual(await starts(records, pending, before), [], "no new mint or start");
  await context.close();
  assert.deepEqual(problems, []);
});
