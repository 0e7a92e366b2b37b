// End-to-end: the release build of the widget on the demo page (Ava's widget; Max's, the
// page's second, waits in its corner), a real BFF and the sandbox,
// driven in Debian's headless Chromium: a whole conversation start with the token-leak scan,
// and the loader's promise to fetch the app only on intent. `cargo xtask test` starts the
// stack on free ports and passes its addresses in SN_* variables (e2e/support.mjs).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  AGENT_ID,
  BFF_URL,
  CLIENT_SECRET,
  GREETING,
  HOST_URL,
  ISSUER,
  LIVEKIT_SECRET,
  SECOND_AGENT_ID,
  jwts,
  launcher,
  openPage,
  useBrowser,
  waitForGreeting,
} from "./support.mjs";

useBrowser();

/** The demo page's widget of `agent`: locators inside it reach into its shadow root. */
const widgetOf = (page, agent) => page.locator(`speaknode-widget[agent-id="${agent}"]`);

test("a visitor opens the widget and the agent greets them", async () => {
  const { context, page, records, pending, problems } = await openPage(HOST_URL);
  const ava = widgetOf(page, AGENT_ID);

  await launcher(ava).click();
  await waitForGreeting(ava);
  assert.equal((await ava.getByTestId("sn-status").textContent()).trim(), "Connected");
  assert.equal((await ava.getByTestId("sn-agent-name").textContent()).trim(), "Ava");
  // Max's widget, in the other corner, stayed closed and started nothing.
  assert.equal(await launcher(widgetOf(page, SECOND_AGENT_ID)).getAttribute("aria-expanded"), "false");

  // The event stream's body is complete only once the BFF ends the stream: end the
  // conversation, so the scan below reads every event the browser received.
  await ava.evaluate((widget) => widget.end());
  await ava.locator('[data-testid="sn-status"][data-phase="completed"]').waitFor({ timeout: 10_000 });
  await Promise.all(pending);
  await context.close();
  assert.deepEqual(problems, [], "the page logged errors");

  // The scan must see the BFF's answers, or it proves nothing.
  const fromBff = records.filter((r) => r.url.startsWith(BFF_URL));
  assert.ok(fromBff.some((r) => r.status === 201), "the browser saw the BFF mint and start");
  const widgetTokens = fromBff.flatMap((r) => jwts(r.body)).filter((t) => t.payload?.iss === BFF_URL);
  assert.ok(widgetTokens.length >= 2, "the scan found the scoped widget tokens, so it reads bodies");
  const events = records.filter((r) => r.url === "eventsource");
  assert.ok(events.some((r) => r.body.includes(GREETING)), "the scan read the event stream the widget followed");

  // No upstream token, secret or issuer ever reaches the browser: bodies, headers, URLs.
  for (const record of records) {
    const everything = [record.url, JSON.stringify(record.headers), record.body].join("\n");
    assert.ok(!everything.includes(CLIENT_SECRET), `client secret leaked in ${record.url}`);
    assert.ok(!everything.includes(LIVEKIT_SECRET), `the LiveKit API secret leaked in ${record.url}`);
    for (const { token, payload } of jwts(everything)) {
      assert.notEqual(payload?.iss, ISSUER, `an upstream access token leaked in ${record.url}: ${token.slice(0, 16)}…`);
    }
    assert.ok(!everything.includes(ISSUER), `the upstream issuer appears in ${record.url}`);
  }
});

test("the widget's code loads only on intent", async () => {
  const { context, page, records, pending } = await openPage(HOST_URL);
  const ava = widgetOf(page, AGENT_ID);
  await launcher(ava).waitFor();
  await launcher(widgetOf(page, SECOND_AGENT_ID)).waitFor();
  await Promise.all(pending);
  const loaded = () => records.filter((r) => r.url.endsWith("_bg.wasm") || r.url.includes("/app/speaknode-widget.js"));
  assert.deepEqual(loaded().map((r) => r.url), [], "nothing of the app is fetched before intent");

  await launcher(ava).hover();
  await page.waitForResponse((r) => r.url().endsWith("_bg.wasm"));
  await context.close();
});
