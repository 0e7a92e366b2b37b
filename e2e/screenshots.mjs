// Captures the documentation's screenshots: the open panel in a live conversation with the
// sandbox's demo agent, in the light and dark themes and in Arabic, into
// docs/screenshots/{light,dark,arabic}.png. `cargo xtask screenshots` builds the release widget,
// starts the stack and runs this (not a test: node --test does not pick it up).
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { conversationId, fixture, launchChromium, launcher, openPage, say, setBrowser, waitForGreeting } from "./support.mjs";

const ORDER_REPLY = "Your order A-1001 has shipped and arrives tomorrow.";
const VARIANTS = [
  { name: "light", params: { theme: "light" }, question: "Hi! Where is my order A-1001?" },
  { name: "dark", params: { theme: "dark" }, question: "Hi! Where is my order A-1001?" },
  // The demo agent answers in English whatever the panel's language; each turn keeps its own
  // direction inside the right-to-left panel.
  { name: "arabic", params: { lang: "ar" }, question: "مرحبًا! أين طلبي (order A-1001)؟" },
];
const MARGIN = 24;

const out = new URL("../docs/screenshots/", import.meta.url);
await mkdir(out, { recursive: true });
const browser = await launchChromium();
setBrowser(browser);
try {
  for (const { name, params, question } of VARIANTS) {
    const { context, page, records, pending, problems } = await openPage(fixture("spa.html", { view: "help", ...params }), {
      viewport: { width: 960, height: 800 },
      context: { deviceScaleFactor: 2 },
    });
    await launcher(page).click();
    await waitForGreeting(page);
    await say(await conversationId(records, pending), question);
    await page.getByTestId("sn-transcript").getByText(ORDER_REPLY).waitFor({ timeout: 10_000 });
    await page.mouse.move(0, 0);
    await page.evaluate(() => document.fonts.ready);
    const box = await page.locator("speaknode-widget").boundingBox();
    const viewport = page.viewportSize();
    const x = Math.max(0, box.x - MARGIN);
    const y = Math.max(0, box.y - MARGIN);
    const clip = { x, y, width: Math.min(viewport.width, box.x + box.width + MARGIN) - x, height: Math.min(viewport.height, box.y + box.height + MARGIN) - y };
    const path = new URL(`${name}.png`, out);
    await page.screenshot({ path: fileURLToPath(path), clip, animations: "disabled", caret: "hide" });
    await context.close();
    if (problems.length > 0) throw new Error(`${name}: the page reported problems: ${problems.join("; ")}`);
    console.log(`wrote ${fileURLToPath(path)}`);
  }
} finally {
  await browser.close();
}
