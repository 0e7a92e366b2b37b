// End-to-end: the release build of the widget on a host page, a real BFF and the sandbox,
// driven in Debian's headless Chromium. `cargo xtask test` starts the stack on free ports and
// passes its addresses in SN_* variables; run it through xtask, not directly.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  assert.ok(value, `${name} is not set: run this through \`cargo xtask test\``);
  return value;
};
const HOST_URL = env("SN_HOST_URL");
const BFF_URL = env("SN_BFF_URL");
const ISSUER = env("SN_ISSUER");
const CLIENT_SECRET = env("SN_CLIENT_SECRET");
const GREETING = env("SN_GREETING");

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: env("SN_CHROMIUM"),
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  });
});
after(async () => {
  await browser?.close();
});

/** Every JWT-shaped string in `text`, with its decoded payload when it decodes. */
function jwts(text) {
  const found = [];
  for (const match of text.matchAll(/eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+/g)) {
    try {
      const payload = JSON.parse(Buffer.from(match[0].split(".")[1], "base64url").toString("utf8"));
      found.push({ token: match[0], payload });
    } catch {
      found.push({ token: match[0], payload: null });
    }
  }
  return found;
}

/** Opens the demo page and records every response the browser receives, with its body. */
async function openPage() {
  const context = await browser.newContext();
  const page = await context.newPage();
  const records = [];
  const pending = [];
  page.on("response", (response) => {
    pending.push(
      (async () => {
        const headers = await response.allHeaders();
        let body = "";
        try {
          body = (await response.body()).toString("latin1");
        } catch {
          // Redirects and aborted loads have no body to read.
        }
        records.push({ url: response.url(), status: response.status(), headers, body });
      })(),
    );
  });
  // Chromium keeps no body for an EventSource response; DevTools reports each message.
  const devtools = await context.newCDPSession(page);
  await devtools.send("Network.enable");
  devtools.on("Network.eventSourceMessageReceived", ({ eventName, data }) => {
    records.push({ url: "eventsource", status: 200, headers: {}, body: `event: ${eventName}\ndata: ${data}` });
  });
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  await page.goto(HOST_URL);
  return { context, page, records, pending, problems };
}

test("a visitor opens the widget and the agent greets them", async () => {
  const { context, page, records, pending, problems } = await openPage();

  const launcher = page.getByTestId("sn-launcher");
  await launcher.waitFor();
  await launcher.click();

  const status = page.locator('[data-testid="sn-status"][data-phase="active"]');
  await status.waitFor({ timeout: 20_000 });
  assert.equal((await status.textContent()).trim(), "Connected");
  await page.getByTestId("sn-transcript").getByText(GREETING).waitFor({ timeout: 10_000 });
  assert.equal((await page.getByTestId("sn-agent-name").textContent()).trim(), "Ava");

  // The event stream's body is complete only once the BFF ends the stream: end the
  // conversation, so the scan below reads every event the browser received.
  await page.evaluate(() => {
    const widget = document.querySelector("speaknode-widget");
    return typeof widget.end === "function" ? widget.end() : widget._handle.end();
  });
  await page.locator('[data-testid="sn-status"][data-phase="completed"]').waitFor({ timeout: 10_000 });
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
    for (const { token, payload } of jwts(everything)) {
      assert.notEqual(payload?.iss, ISSUER, `an upstream access token leaked in ${record.url}: ${token.slice(0, 16)}…`);
    }
    assert.ok(!everything.includes(ISSUER), `the upstream issuer appears in ${record.url}`);
  }
});

test("the widget's code loads only on intent", async () => {
  const { context, page, records, pending } = await openPage();
  await page.getByTestId("sn-launcher").waitFor();
  await Promise.all(pending);
  const loaded = () => records.filter((r) => r.url.endsWith("_bg.wasm") || r.url.includes("/app/speaknode-widget.js"));
  assert.deepEqual(loaded().map((r) => r.url), [], "nothing of the app is fetched before intent");

  await page.getByTestId("sn-launcher").hover();
  await page.waitForResponse((r) => r.url().endsWith("_bg.wasm"));
  await context.close();
});
