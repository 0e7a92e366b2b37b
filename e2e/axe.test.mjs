// End-to-end: axe-core checks the open panel, Shadow DOM included, in the light and dark
// themes and in Arabic, failing on any serious or critical violation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { axeSource, fixture, launcher, openPage, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

for (const [name, params] of [
  ["light theme", { theme: "light" }],
  ["dark theme", { theme: "dark" }],
  ["Arabic", { lang: "ar" }],
]) {
  test(`axe finds no serious or critical violation in the open panel (${name})`, async () => {
    const { context, page, problems } = await openPage(fixture("spa.html", { view: "help", ...params }));
    await launcher(page).click();
    await waitForGreeting(page);
    // Evaluated through the DevTools protocol, which the page's CSP does not govern.
    await page.evaluate(await axeSource());
    const results = await page.evaluate(async () => {
      const { violations, passes } = await window.axe.run(
        { include: [["speaknode-widget"]] },
        { resultTypes: ["violations"], runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"] } },
      );
      return {
        checked: passes.length,
        violations: violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(" >>> ")) })),
      };
    });
    assert.ok(results.checked > 5, `axe ran its rules on the widget (${results.checked} passed)`);
    const blocking = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
    assert.deepEqual(blocking, [], JSON.stringify(results.violations, null, 2));
    await context.close();
    assert.deepEqual(problems, []);
  });
}
