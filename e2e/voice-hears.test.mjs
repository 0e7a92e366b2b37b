// End-to-end: the agent hears the visitor speak. The fake microphone plays a 440 Hz tone for
// 1.5 s, then 4 s of silence, looped: a visitor who says something and waits for the answer.
// The LiveKit stand-in detects each utterance from the level on the microphone's packets and
// takes what it "was" from Max's scenario (`hears`, crates/speaknode-sandbox/src/config.rs):
// it publishes the visitor's words as an interim then a final lk.transcription and answers.
// The widget shows them as the visitor's line, once, then the agent's reply; the second
// utterance says goodbye and the agent ends the call, leaving each line shown once.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import {
  SECOND_GREETING,
  WEBRTC_ARGS,
  burstWav,
  fakeMicArgs,
  fixture,
  keepPeerConnections,
  launchChromium,
  launcher,
  openPage,
  roomOf,
  roomStats,
  transcript,
  until,
} from "./support.mjs";

// Max's scenario: what the first two utterances were, and the replies they get.
const ASKED = "Do you have the blue jacket in medium?";
const ANSWER = "Yes, the blue jacket is in stock in medium. Shall I hold one for you?";
const BYE = "Thanks, that's all. Bye!";
const GOODBYE = "You're welcome. Goodbye!";

let workDir;
let wav;
before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "speaknode-hears-"));
  wav = path.join(workDir, "mic-bursts.wav");
  await writeFile(wav, burstWav(440, 1.5, 4));
});
after(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Init script: records every live (not yet stored) visitor caption the widget shows, from
 *  inside its shadow root, so that a short-lived interim text is not missed by polling. */
function recordVisitorCaptions() {
  const captions = [];
  Object.defineProperty(window, "__visitorCaptions", { value: captions });
  const attachShadow = Element.prototype.attachShadow;
  Element.prototype.attachShadow = function (init) {
    const root = attachShadow.call(this, init);
    if (this.localName !== "speaknode-widget") return root;
    const note = () => {
      for (const row of root.querySelectorAll('[data-testid="sn-turn"][data-role="user"][data-live]')) {
        const text = row.querySelector(".sn-text")?.textContent.trim();
        const final = row.dataset.final === "true";
        if (text && (captions.at(-1)?.text !== text || captions.at(-1)?.final !== final)) captions.push({ text, final });
      }
    };
    new MutationObserver(note).observe(root, {
      childList: true,
      subtree: true,
      characterData: true,
      attributes: true,
      attributeFilter: ["data-live", "data-final"],
    });
    return root;
  };
}

const said = async (page, text) => (await transcript(page)).filter(([, line]) => line === text);

test("the agent hears the visitor speak: their words caption live then once, it answers, and a spoken goodbye ends the call", async (t) => {
  const browser = await launchChromium([
    ...fakeMicArgs(wav),
    ...WEBRTC_ARGS,
    "--autoplay-policy=no-user-gesture-required",
  ]);
  try {
    const { context, page, records, pending } = await openPage(fixture("max.html"), {
      browser,
      instrument: true,
      initScripts: [keepPeerConnections, recordVisitorCaptions],
    });
    await launcher(page).click();
    await page.locator('[data-testid="sn-call"][data-call="connected"]').waitFor({ timeout: 30_000 });
    const room = await roomOf(records, pending);
    await page.getByTestId("sn-transcript").getByText(SECOND_GREETING).waitFor({ timeout: 20_000 });

    // The first utterance: captioned while spoken (its first word, interim), then final,
    // then stored; shown once, and answered.
    await until(async () => (await said(page, ANSWER)).length > 0, { timeout: 30_000, message: "Max's answer to the spoken question" });
    const shown = JSON.stringify(await transcript(page));
    assert.deepEqual(await said(page, ASKED), [["user", ASKED]], `the visitor's words once: ${shown}`);
    assert.deepEqual(await said(page, ANSWER), [["agent", ANSWER]], `the answer once: ${shown}`);
    const lines = await transcript(page);
    assert.ok(lines.findIndex(([, line]) => line === ASKED) < lines.findIndex(([, line]) => line === ANSWER), `question before answer: ${shown}`);
    const captions = await page.evaluate(() => window.__visitorCaptions);
    t.diagnostic(`live visitor captions: ${JSON.stringify(captions)}`);
    assert.ok(
      captions.some(({ text, final }) => !final && text === ASKED.split(" ")[0]),
      `an interim caption while the visitor spoke: ${JSON.stringify(captions)}`,
    );
    const stats = await roomStats(room);
    t.diagnostic(`stand-in: ${JSON.stringify(stats.visitor)}`);
    assert.ok(stats.visitor.utterances >= 1);
    assert.deepEqual(stats.visitor.chats, [], "nothing was typed");

    // The second utterance says goodbye: the agent answers and ends the conversation.
    await until(async () => (await said(page, GOODBYE)).length > 0, { timeout: 30_000, message: "Max's goodbye" });
    await until(async () => (await page.getByTestId("sn-status").getAttribute("data-phase")) === "completed", {
      timeout: 30_000,
      message: "the conversation ended by the spoken goodbye",
    });
    // The whole conversation, each line once: the call ended while the agent's last caption
    // was still open, and that half line went into the stored turn.
    const expected = [
      ["agent", SECOND_GREETING],
      ["user", ASKED],
      ["agent", ANSWER],
      ["user", BYE],
      ["agent", GOODBYE],
    ];
    await until(async () => JSON.stringify(await transcript(page)) === JSON.stringify(expected), {
      timeout: 10_000,
      message: `the transcript ${JSON.stringify(expected)}`,
    }).catch(async (error) => {
      throw new Error(`${error.message}; shown ${JSON.stringify(await transcript(page))}`);
    });
    await until(async () => (await roomStats(room))?.visitor.connected === false, { message: "the visitor gone from the room" });
    await context.close();
  } finally {
    await browser.close();
  }
});
