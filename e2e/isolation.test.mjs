// End-to-end: the widget and the host page stay out of each other's way: under the README's
// strict Content-Security-Policy the whole flow works without a single violation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { STRICT_CSP, fixture, launcher, openPage, waitForGreeting, useBrowser } from "./support.mjs";

useBrowser();

test("the widget works under the strict CSP and causes no violation", async () => {
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).click();
  await waitForGreeting(page);
  await launcher(page).click();
  await page.getByTestId("sn-panel").waitFor({ state: "detached" });
  await Promise.all(pending);
  const served = records.find((r) => r.url.endsWith("/fixtures/embed.html"));
  assert.equal(served.headers["content-security-policy"], STRICT_CSP, "the page was served with the strict CSP");
  assert.deepEqual(await page.evaluate(() => window.__violations), []);
  await context.close();
  assert.deepEqual(problems, []);
});
