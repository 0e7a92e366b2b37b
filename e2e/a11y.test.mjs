// End-to-end: accessibility and right-to-left: the Arabic panel reads right to left.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture, launcher, openPage, panel, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

const ARABIC_LAUNCHER = "تحدّث معنا";

test("lang=ar: the panel reads right to left", async () => {
  const { context, page, problems } = await openPage(fixture("spa.html", { view: "help", lang: "ar" }));
  assert.equal(await launcher(page).getAttribute("aria-label"), ARABIC_LAUNCHER);
  await launcher(page).click();
  await waitForGreeting(page);
  assert.equal(await panel(page).getAttribute("dir"), "rtl");
  assert.equal(await panel(page).evaluate((element) => getComputedStyle(element).direction), "rtl");
  assert.equal(await panel(page).evaluate((element) => element.closest("[lang]").getAttribute("lang")), "ar");
  await context.close();
  assert.deepEqual(problems, []);
});
