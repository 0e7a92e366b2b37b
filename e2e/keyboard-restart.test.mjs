// End-to-end: after "Start conversation" is pressed from the keyboard, focus stays in the
// widget, so Escape still closes the panel.
import { test } from "node:test";
import assert from "node:assert/strict";
import { BFF_URL, fixture, focused, launcher, openPage, panel, tabTo, until, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

test("after starting again from the keyboard, focus stays in the widget and Escape closes", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  await tabTo(page, "sn-launcher");
  await page.keyboard.press("Enter");
  await waitForGreeting(page);
  await tabTo(page, "sn-end");
  await page.keyboard.press("Enter");
  await page.locator('[data-testid="sn-status"][data-phase="completed"]').waitFor({ timeout: 10_000 });

  await tabTo(page, "sn-start");
  await page.keyboard.press("Enter");
  await until(async () => {
    await Promise.all(pending);
    return records.filter((r) => r.method === "POST" && r.url === `${BFF_URL}/v1/conversations` && r.status === 201).length === 2;
  }, { message: "a second conversation" });
  await page.locator('[data-testid="sn-status"][data-phase="active"]').waitFor({ timeout: 20_000 });
  assert.notEqual(await focused(page), "body", "focus stays in the widget");

  await page.keyboard.press("Escape");
  await panel(page).waitFor({ state: "detached" });
  await until(async () => (await focused(page)) === "sn-launcher", { message: "focus back on the launcher" });
  await context.close();
  assert.deepEqual(problems, []);
});
