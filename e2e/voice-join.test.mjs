// End-to-end: the voice bridge with the real livekit-client (app/voice.mjs, loaded through the
// wasm's snippet) when a join fails, under the strict CSP. The LiveKit "server" is the host
// page's own origin: its signal WebSocket upgrade fails (the host answers 404), and Playwright
// answers the SDK's follow-up validate request (GET /rtc/v1/validate) as a LiveKit server
// would. Joins that succeed are tested against the sandbox's stand-in in voice.test.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HOST_URL, fixture, launcher, openPage, voiceLoaderUrl, useBrowser } from "./support.mjs";

useBrowser();

// A syntactically valid, unsigned join token: the SDK only passes it on.
const TOKEN = [{ alg: "HS256", typ: "JWT" }, { sub: "visitor", video: { roomJoin: true, room: "r1" } }]
  .map((part) => Buffer.from(JSON.stringify(part)).toString("base64url"))
  .concat("c2lnbmF0dXJl")
  .join(".");

/**
 * Opens the strict-CSP fixture page, makes the signal WebSocket fail and answers the validate
 * request with `validate(route)`, then connects a bridge and returns its rejection, its
 * events and what the SDK asked for.
 */
async function failedJoin(validate) {
  const loader = await voiceLoaderUrl();
  const { context, page, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  // The host's server answers the WebSocket upgrade with a plain 404, so the socket fails
  // before it opens, as against a LiveKit server that refuses the token at the upgrade.
  const signals = [];
  page.on("websocket", (ws) => signals.push(ws.url()));
  const validations = [];
  await page.route(/\/rtc\/v1\/validate/, (route) => {
    validations.push(route.request().url());
    return validate(route);
  });
  const result = await page.evaluate(
    async ({ loader, url, token }) => {
      const voice = await (await import(loader)).loadVoice();
      const events = [];
      const bridge = voice.create((json) => events.push(JSON.parse(json)));
      const rejection = await bridge.connect(url, token, { mic: false }).then(
        () => null,
        (reason) => JSON.parse(reason),
      );
      await bridge.disconnect();
      return { rejection, events, violations: window.__violations };
    },
    { loader, url: HOST_URL.replace(/^http/, "ws"), token: TOKEN },
  );
  await context.close();
  return { ...result, signals, validations, problems };
}

/** The events without the SDK's own wording. */
const links = (events) => events.map(({ type, state, reason }) => ({ type, state, reason }));

test("a refused join token rejects connect as refused, and the room reports why it closed", async () => {
  const { rejection, events, signals, validations, violations, problems } = await failedJoin((route) =>
    route.fulfill({ status: 401, contentType: "text/plain", body: "invalid token: token is expired" }),
  );
  assert.ok(signals.length > 0 && signals.every((url) => url.includes("access_token=")), "the SDK opened the signal connection");
  assert.equal(validations.length, 1, "and asked the server why it failed");
  assert.equal(rejection?.code, "refused", JSON.stringify(rejection));
  assert.equal(rejection.name, "ConnectionError");
  assert.deepEqual(links(events), [
    { type: "link", state: "connecting", reason: undefined },
    { type: "link", state: "disconnected", reason: "refused" },
  ]);
  assert.deepEqual(violations, []);
  assert.deepEqual(problems.filter((problem) => problem.startsWith("page error")), []);
});

test("a server that cannot be reached rejects connect as unreachable, a network end", async () => {
  const { rejection, events, validations, violations, problems } = await failedJoin((route) => route.abort("connectionrefused"));
  assert.equal(validations.length, 1);
  assert.equal(rejection?.code, "unreachable", JSON.stringify(rejection));
  assert.deepEqual(links(events), [
    { type: "link", state: "connecting", reason: undefined },
    { type: "link", state: "disconnected", reason: "network" },
  ]);
  assert.deepEqual(violations, []);
  assert.deepEqual(problems.filter((problem) => problem.startsWith("page error")), []);
});
