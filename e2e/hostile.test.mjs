// End-to-end: a host stylesheet of blanket !important resets (e2e/pages/hostile.css) changes
// nothing of the widget's layout or look compared with the same page without it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixture, launcher, openPage, useBrowser, waitForGreeting } from "./support.mjs";

useBrowser();

/** Boxes and computed styles of the widget's parts that the visitor sees. */
function measure(page) {
  return page.locator("speaknode-widget").evaluate((host) => {
    const TEXT = ["font-family", "font-size", "font-style", "font-weight", "line-height", "letter-spacing", "word-spacing", "text-transform", "text-align", "white-space", "color", "visibility", "cursor", "direction"];
    const BOX = ["display", "position", "z-index", "width", "height", "margin-top", "margin-left", "padding-top", "padding-left", "border-top-width", "border-top-color", "border-top-left-radius", "background-color", "box-shadow", "list-style-type", "fill"];
    const describe = (element) => {
      if (!element) return null;
      const rect = element.getBoundingClientRect();
      const style = getComputedStyle(element);
      const described = { box: [rect.x, rect.y, rect.width, rect.height].map((v) => Math.round(v * 10) / 10) };
      for (const name of [...TEXT, ...BOX]) described[name] = style.getPropertyValue(name);
      return described;
    };
    const root = host.shadowRoot;
    // The host shows nothing of its own (no text, no background): what matters of it is where
    // and how it sits; its inherited text styles are reset inside the shadow root.
    const rect = host.getBoundingClientRect();
    const hostStyle = getComputedStyle(host);
    const parts = {
      host: {
        box: [rect.x, rect.y, rect.width, rect.height].map((v) => Math.round(v * 10) / 10),
        ...Object.fromEntries(["display", "position", "z-index", "visibility", "opacity", "transform", "pointer-events"].map((name) => [name, hostStyle.getPropertyValue(name)])),
      },
    };
    const selectors = {
      launcher: '[data-testid="sn-launcher"]',
      icon: ".sn-launcher-icon",
      panel: '[data-testid="sn-panel"]',
      title: '[data-testid="sn-agent-name"]',
      status: '[data-testid="sn-status"]',
      transcript: '[data-testid="sn-transcript"]',
      turn: '[data-testid="sn-turn"]',
      text: ".sn-text",
    };
    for (const [name, selector] of Object.entries(selectors)) parts[name] = describe(root.querySelector(selector));
    return parts;
  });
}

/** The widget on `name`: before the app loads, and open with the greeting. */
async function looks(name) {
  const { context, page, problems } = await openPage(fixture(name));
  await launcher(page).waitFor();
  const closed = await measure(page);
  await launcher(page).click();
  await waitForGreeting(page);
  const opened = await measure(page);
  await context.close();
  assert.deepEqual(problems, []);
  return { closed, opened };
}

test("a hostile host stylesheet changes nothing of the widget's layout and look", async () => {
  const clean = await looks("embed.html");
  const hostile = await looks("hostile.html");
  assert.ok(clean.opened.panel && clean.opened.text, "the measurement saw the open panel and a turn");
  for (const state of ["closed", "opened"]) {
    for (const part of Object.keys(clean[state])) {
      assert.deepEqual(hostile[state][part], clean[state][part], `${state}: the ${part} differs under hostile.css`);
    }
  }
});
