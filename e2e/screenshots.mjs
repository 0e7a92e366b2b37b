// Captures the documentation's screenshots: the open panel in a live call with the sandbox's
// demo agent (a fake microphone playing a tone, the question typed into the call's message
// field), in the light and dark themes and in Arabic, into docs/screenshots/{light,dark,arabic}.png.
// `cargo xtask screenshots` builds the release widget, starts the stack and runs this (not a
// test: node --test does not pick it up).
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WEBRTC_ARGS, fakeMicArgs, fixture, launchChromium, launcher, openPage, setBrowser, sineWav, waitForGreeting } from "./support.mjs";

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
const work = await mkdtemp(path.join(tmpdir(), "speaknode-screenshots-"));
const wav = path.join(work, "mic.wav");
await writeFile(wav, sineWav(440, 5));
const browser = await launchChromium([
  ...fakeMicArgs(wav),
  ...WEBRTC_ARGS,
  "--autoplay-policy=no-user-gesture-required",
]);
setBrowser(browser);
try {
  for (const { name, params, question } of VARIANTS) {
    const { context, page, problems } = await openPage(fixture("spa.html", { view: "help", ...params }), {
      viewport: { width: 960, height: 800 },
      context: { deviceScaleFactor: 2 },
    });
    await launcher(page).click();
    await waitForGreeting(page);
    await page.locator('[data-testid="sn-call"][data-call="connected"]').waitFor({ timeout: 30_000 });
    await page.getByTestId("sn-message").fill(question);
    await page.getByTestId("sn-message").press("Enter");
    await page.getByTestId("sn-transcript").getByText(ORDER_REPLY).waitFor({ timeout: 30_000 });
    // The agent done speaking, listening again; the microphone meter shows the tone.
    await page.locator('[data-testid="sn-call-status"][data-agent="listening"]').waitFor({ timeout: 30_000 });
    await page.mouse.move(0, 0);
    await page.getByTestId("sn-message").blur();
    await page.evaluate(() => document.fonts.ready);
    const box = await page.locator("speaknode-widget").boundingBox();
    const viewport = page.viewportSize();
    const x = Math.max(0, box.x - MARGIN);
    const y = Math.max(0, box.y - MARGIN);
    const clip = { x, y, width: Math.min(viewport.width, box.x + box.width + MARGIN) - x, height: Math.min(viewport.height, box.y + box.height + MARGIN) - y };
    const file = new URL(`${name}.png`, out);
    await page.screenshot({ path: fileURLToPath(file), clip, animations: "disabled", caret: "hide" });
    await context.close();
    // livekit-client tries the /rtc/v1 signal path first; the stand-in answers 404 there, as
    // LiveKit 1.9 does, and the SDK falls back (see e2e/voice.test.mjs).
    const real = problems.filter((problem) => !/\/rtc\/v1[/?]/.test(problem));
    if (real.length > 0) throw new Error(`${name}: the page reported problems: ${real.join("; ")}`);
    console.log(`wrote ${fileURLToPath(file)}`);
  }
} finally {
  await browser.close();
  await rm(work, { recursive: true, force: true });
}
