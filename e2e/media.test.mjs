// End-to-end: what the stylesheet promises for phones and for visitors' system settings,
// checked in Chromium's layout rather than in the CSS text: a full-screen panel below 480 px,
// inputs that do not make iOS zoom, no motion under prefers-reduced-motion, and theme="auto"
// following prefers-color-scheme.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture, launcher, openPage, panel, tabTo, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

test("below 480 px the open panel fills the screen and inputs are at least 16 px", async () => {
  const viewport = { width: 390, height: 780 };
  const { context, page, problems } = await openPage(fixture("embed.html"), { viewport });
  await launcher(page).click();
  await waitForGreeting(page);
  const box = await panel(page).boundingBox();
  assert.deepEqual(
    [box.x, box.y, box.width, box.height].map(Math.round),
    [0, 0, viewport.width, viewport.height],
    "the panel covers the whole viewport",
  );
  // The rating's comment box is the panel's text input until text chat arrives.
  await tabTo(page, "sn-end");
  await page.keyboard.press("Enter");
  const comment = page.getByTestId("sn-feedback-comment");
  await comment.waitFor();
  const size = await comment.evaluate((element) => parseFloat(getComputedStyle(element).fontSize));
  assert.ok(size >= 16, `the comment box's font is ${size}px; below 16px iOS zooms on focus`);
  await context.close();
  assert.deepEqual(problems, []);
});

test("above 480 px the panel is a floating card, not full screen", async () => {
  const { context, page } = await openPage(fixture("embed.html"), { viewport: { width: 1280, height: 800 } });
  await launcher(page).click();
  await waitForGreeting(page);
  const box = await panel(page).boundingBox();
  assert.ok(box.width < 600 && box.x > 600, `a card in the corner, got ${JSON.stringify(box)}`);
  await context.close();
});

test("prefers-reduced-motion: reduce turns every transition and animation off", async () => {
  const { context, page } = await openPage(fixture("embed.html"), { context: { reducedMotion: "reduce" } });
  await launcher(page).click();
  await waitForGreeting(page);
  const moving = await page.locator("speaknode-widget").evaluate((host) =>
    [...host.shadowRoot.querySelectorAll("*")]
      .map((element) => getComputedStyle(element))
      .filter((style) =>
        style.transitionDuration.split(",").some((d) => parseFloat(d) > 0) ||
        (style.animationName !== "none" && style.animationDuration.split(",").some((d) => parseFloat(d) > 0)))
      .length);
  assert.equal(moving, 0, "no element keeps a transition or an animation");
  await context.close();
});

test("theme=auto follows the system's dark mode", async () => {
  const colours = async (colorScheme) => {
    const { context, page } = await openPage(fixture("spa.html", { view: "help", theme: "auto" }), { context: { colorScheme } });
    await launcher(page).waitFor();
    const colour = await launcher(page).evaluate((element) => getComputedStyle(element).backgroundColor);
    await context.close();
    return colour;
  };
  const light = await colours("light");
  const dark = await colours("dark");
  assert.notEqual(light, dark, "the launcher changes colour with the system");
});
