// End-to-end: closing the panel right after opening it leaves the widget alive. Regression
// test: the transcript's scroll-to-end frame once read a disposed node reference and the
// panic (panic = "abort") killed the widget.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture, launcher, openPage, panel, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

test("closing the panel in the same task that opened it leaves the widget alive", async () => {
  const { context, page, problems } = await openPage(fixture("embed.html"));
  await launcher(page).click();
  await waitForGreeting(page);
  await launcher(page).click();
  await panel(page).waitFor({ state: "detached" });
  for (let round = 0; round < 5; round += 1) {
    await page.evaluate(() => new Promise((resolve) => {
      const element = document.querySelector("speaknode-widget");
      element.open().then(() => element.close()).then(() => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    }));
  }
  await launcher(page).click();
  await waitForGreeting(page);
  await context.close();
  assert.deepEqual(problems, []);
});
