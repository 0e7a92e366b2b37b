// End-to-end: the voice bundle (app/voice.mjs: our bridge and livekit-client, built by
// js/bundle.mjs) ships with the release build, is served beside the wasm, costs nothing until
// a call starts, and loads under the README's strict Content-Security-Policy.
import { test } from "node:test";
import assert from "node:assert/strict";
import { HOST_URL, fixture, launcher, openPage, until, voiceLoaderUrl, useBrowser } from "./support.mjs";

useBrowser();

const VOICE = new URL("/app/voice.mjs", HOST_URL).href;

test("the voice bundle is not loaded with the page, even with the app mounted, only by the click that starts a call", async () => {
  // load=eager mounts the wasm app at once: the page has all of the widget except the call.
  const { context, page, records, pending, failed, problems } = await openPage(fixture("spa.html", { view: "help", load: "eager" }));
  await until(() => page.evaluate(() => document.querySelector("speaknode-widget").shadowRoot.querySelector(".sn-root") !== null), {
    message: "the eager mount",
  });
  await Promise.all(pending);
  const requested = () => [...records.map((r) => r.url), ...failed.map((r) => r.url())];
  assert.ok(
    requested().some((url) => url.endsWith("/app/speaknode-widget_bg.wasm")),
    "the app loaded (the check below means something)",
  );
  assert.deepEqual(
    requested().filter((url) => url.includes("voice.mjs")),
    [],
    "nothing of the voice bundle was requested before the visitor started talking",
  );
  // Opening the panel starts the conversation, and the stack's conversations have a call.
  await launcher(page).click();
  await until(() => requested().includes(VOICE), { message: "the call's bundle, requested by the click" });
  await context.close();
  assert.deepEqual(problems, []);
});

test("the bundle is served same-origin as JavaScript with its licences", async () => {
  const bundle = await fetch(VOICE);
  assert.equal(bundle.status, 200);
  assert.match(bundle.headers.get("content-type"), /javascript/);
  const source = await bundle.text();
  // Self-contained: a module with imports would fetch more at call start.
  assert.doesNotMatch(source, /^import\b|[;}]import\s*["{*]/m);
  const legal = await fetch(`${VOICE}.LEGAL.txt`);
  assert.equal(legal.status, 200);
  const licences = await legal.text();
  assert.match(licences, /^livekit-client 2\.23\.0 \(Apache-2\.0\)/);
  assert.match(licences, /Apache License\s+Version 2\.0/);
});

test("the wasm's loader imports the bundle under the strict CSP without a violation or a page DOM change", async () => {
  const loader = await voiceLoaderUrl();
  const { context, page, records, pending, problems } = await openPage(fixture("embed.html"));
  await launcher(page).waitFor();
  const result = await page.evaluate(async (loader) => {
    const before = document.documentElement.outerHTML;
    const voice = await (await import(loader)).loadVoice();
    const events = [];
    const bridge = voice.create((json) => events.push(JSON.parse(json)));
    const methods = Object.keys(bridge).sort();
    await bridge.disconnect();
    return {
      exports: Object.keys(voice),
      methods,
      events,
      domUnchanged: document.documentElement.outerHTML === before,
      violations: window.__violations,
    };
  }, loader);
  await Promise.all(pending);
  assert.ok(records.some((r) => r.url === VOICE && r.status === 200), "the snippet fetched app/voice.mjs");
  assert.deepEqual(result.exports, ["create"]);
  assert.deepEqual(result.methods, [
    "connect",
    "disconnect",
    "listMics",
    "sendChat",
    "setMic",
    "startAudio",
    "switchMic",
  ]);
  assert.deepEqual(result.events, [], "a bridge that never connected reports nothing");
  assert.ok(result.domUnchanged, "creating and disconnecting a bridge left the page's DOM alone");
  assert.deepEqual(result.violations, []);
  await context.close();
  assert.deepEqual(problems, []);
});
