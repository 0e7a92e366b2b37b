// End-to-end: the panel by keyboard alone, and the launcher's unread badge. A visitor who
// only uses the keyboard reaches the launcher from the page, opens the panel (which starts a
// conversation), ends it, rates it with a comment and closes the panel with Escape, focus
// back on the launcher; agent turns that arrive while the panel is closed show on it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  BFF_URL,
  GREETING,
  afterFrames,
  conversationId,
  fixture,
  focused,
  launcher,
  openPage,
  panel,
  say,
  tabTo,
  until,
  useBrowser,
  waitForGreeting,
} from "./support.mjs";

useBrowser();

const phase = (page, name) => page.locator(`[data-testid="sn-status"][data-phase="${name}"]`);

test("open (which starts), end, rate with a comment and close, by keyboard only", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  await tabTo(page, "sn-launcher");
  await page.keyboard.press("Enter");
  await waitForGreeting(page);
  const first = await conversationId(records, pending);
  assert.notEqual(await focused(page), "sn-end", "a stray Enter cannot hang up");

  await tabTo(page, "sn-end");
  await page.keyboard.press("Enter");
  await phase(page, "completed").waitFor({ timeout: 10_000 });
  await until(async () => (await focused(page)) === "sn-feedback-up", { message: "focus on the rating after the end" });
  await page.keyboard.press("Enter");
  assert.equal(await page.getByTestId("sn-feedback-up").getAttribute("aria-pressed"), "true");
  await tabTo(page, "sn-feedback-comment");
  await page.keyboard.type("Quick and helpful");
  await tabTo(page, "sn-feedback-send");
  await page.keyboard.press("Enter");
  await page.getByTestId("sn-feedback-thanks").waitFor();
  await until(async () => (await focused(page)) === "sn-feedback-thanks", { message: "focus on the thanks" });
  await Promise.all(pending);
  const rated = records.find((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/conversations/${first}/feedback`);
  assert.ok(rated && rated.status < 300, `the BFF took the rating: ${rated?.status}`);
  assert.deepEqual(JSON.parse(rated.requestBody), { rating: "up", comment: "Quick and helpful" });

  await afterFrames(page);
  await page.keyboard.press("Escape");
  await panel(page).waitFor({ state: "detached" });
  await until(async () => (await focused(page)) === "sn-launcher", { message: "focus back on the launcher" });
  await context.close();
  assert.deepEqual(problems, []);
});

test("agent turns that arrive while the panel is closed show on the launcher until it opens", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).click();
  await waitForGreeting(page);
  const id = await conversationId(records, pending);
  await page.getByTestId("sn-close").click();
  await panel(page).waitFor({ state: "detached" });
  assert.equal(await page.getByTestId("sn-unread").count(), 0, "nothing unread yet");

  await say(id, "Where is my order?");
  await page.getByTestId("sn-unread").getByText("1").waitFor({ timeout: 10_000 });
  assert.equal(await launcher(page).getAttribute("aria-label"), "Talk to us, 1 unread message");

  await launcher(page).click();
  await page.getByTestId("sn-transcript").getByText(GREETING).waitFor();
  assert.equal(await page.getByTestId("sn-unread").count(), 0, "opening reads them");
  assert.equal(await launcher(page).getAttribute("aria-label"), "Talk to us");
  await context.close();
  assert.deepEqual(problems, []);
});
