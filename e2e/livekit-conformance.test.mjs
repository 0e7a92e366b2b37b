// Conformance of the sandbox's LiveKit stand-in with the real, unmodified livekit-client
// (node_modules/livekit-client/dist/livekit-client.esm.mjs) in headless Chromium: join over
// v0 after the v1 refusal, the agent's tone heard, text streams both ways, the microphone's
// level seen by the stand-in, agent states, and refused tokens.
//
// Under `cargo xtask test --only e2e` it uses the stack's sandbox (SN_SANDBOX_URL,
// SN_LIVEKIT_SECRET, SN_CLIENT_SECRET, SN_AGENT_ID). Run alone
// (`node --test e2e/livekit-conformance.test.mjs`) it starts the sandbox binary
// (SN_SANDBOX_BIN, default target/debug/speaknode-sandbox; `cargo build -p
// speaknode-sandbox`) with a configuration of its own. Either way it serves the page from
// its own node:http and drives SN_CHROMIUM (default /usr/bin/chromium). What the agent says
// is compared with the conversation's transcript over REST, so any scenario will do.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, readFile, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { SignJWT } from "jose";
import { fakeMicArgs, sineWav } from "./wav.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const SANDBOX_BIN = process.env.SN_SANDBOX_BIN ?? path.join(ROOT, "target/debug/speaknode-sandbox");
const CHROMIUM = process.env.SN_CHROMIUM ?? "/usr/bin/chromium";
const SDK = path.join(ROOT, "node_modules/livekit-client/dist/livekit-client.esm.mjs");

// The xtask stack when it runs this, else a sandbox of the test's own.
const STACK = Boolean(process.env.SN_SANDBOX_URL && process.env.SN_LIVEKIT_SECRET);
const SPACE = randomUUID();
const AGENT = STACK ? process.env.SN_AGENT_ID : randomUUID();
const CLIENT_ID = STACK ? "speaknode-bff-demo" : "livekit-conformance";
const CLIENT_SECRET = STACK ? process.env.SN_CLIENT_SECRET : randomBytes(24).toString("hex");
const LIVEKIT_SECRET = STACK ? process.env.SN_LIVEKIT_SECRET : randomBytes(24).toString("hex");
const GREETING = "Hello, I am Ava, the test agent. How can I help you today?";
const REPLY = "Hello to you too, it is nice to hear from you.";
const MIC_HZ = 440;
const TONE_HZ = 880;

/** Polls `condition` until it returns something truthy, or fails after `timeout` ms. */
async function until(condition, { timeout = 15_000, interval = 50, message = "condition" } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  while (Date.now() < deadline) {
    last = await condition();
    if (last) return last;
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
  assert.fail(`timed out waiting for ${message} (last: ${JSON.stringify(last)})`);
}

let workDir;
let sandbox;
let sandboxUrl;
let pageServer;
let pageUrl;
let browser;

async function startSandbox() {
  const config = `
admin_enabled = true

[livekit]
api_key = "devkey"
api_secret = "${LIVEKIT_SECRET}"

[timing]
dispatch_ms = 100
# Long enough for the visitor to be in the room before the agent joins, so that the
# subscriber connection is renegotiated for the agent's track.
join_ms = 2500

[[clients]]
client_id = "${CLIENT_ID}"
client_secret = "${CLIENT_SECRET}"
space_id = "${SPACE}"

[[agents]]
id = "${AGENT}"
title = "Ava"
space_id = "${SPACE}"
greeting = "${GREETING}"

[[scenarios]]
agent_id = "${AGENT}"
think_ms = 300
default_reply = "Sorry?"
[[scenarios.replies]]
pattern = "*hello*"
reply = "${REPLY}"
`;
  const configPath = path.join(workDir, "sandbox.toml");
  await writeFile(configPath, config);
  const child = spawn(SANDBOX_BIN, ["--config", configPath, "--listen", "127.0.0.1:0"], {
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]);
    });
    child.on("exit", (code) => reject(new Error(`sandbox exited with ${code}: ${out}`)));
  });
  return { child, url };
}

async function startPageServer() {
  const sdk = await readFile(SDK);
  const server = http.createServer((request, response) => {
    if (request.url === "/livekit-client.esm.mjs") {
      response.writeHead(200, { "content-type": "text/javascript" });
      return response.end(sdk);
    }
    response.writeHead(200, { "content-type": "text/html" });
    response.end(`<!doctype html><meta charset="utf-8"><title>LiveKit conformance</title>
<script type="module">window.LK = await import("/livekit-client.esm.mjs");</script>`);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

before(async () => {
  workDir = await mkdtemp(path.join(tmpdir(), "livekit-conformance-"));
  const wav = path.join(workDir, "mic-440.wav");
  await writeFile(wav, sineWav(MIC_HZ, 5));
  if (STACK) sandboxUrl = process.env.SN_SANDBOX_URL;
  else ({ child: sandbox, url: sandboxUrl } = await startSandbox());
  ({ server: pageServer, url: pageUrl } = await startPageServer());
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      ...fakeMicArgs(wav),
      // Chromium leaves loopback out of ICE, and hides host addresses behind mDNS names.
      "--allow-loopback-in-peer-connection",
      "--disable-features=WebRtcHideLocalIpsWithMdns",
      "--autoplay-policy=no-user-gesture-required",
    ],
  });
});

after(async () => {
  await browser?.close();
  pageServer?.close();
  sandbox?.kill("SIGTERM");
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** A service-account token of the test's client, as the BFF gets one. */
async function apiToken() {
  const response = await fetch(`${sandboxUrl}/realms/speaknode/protocol/openid-connect/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
  });
  assert.equal(response.status, 200, await response.clone().text());
  return (await response.json()).access_token;
}

/** Dispatches a web conversation and waits for its room. */
async function dispatch() {
  const token = await apiToken();
  const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
  const created = await fetch(`${sandboxUrl}/api/v1/conversations/dispatch`, {
    method: "POST",
    headers,
    body: JSON.stringify({ agent_id: AGENT, channel: "Web" }),
  });
  assert.equal(created.status, 201, await created.clone().text());
  const { id } = await created.json();
  return until(
    async () => {
      const conversation = await (await fetch(`${sandboxUrl}/api/v1/conversations/${id}`, { headers })).json();
      return conversation.live_kit_room_name ? conversation : null;
    },
    { message: "the conversation's room" },
  );
}

/** The claims of a JWT, unverified. */
const claimsOf = (token) => JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());

/** A join token for `room`, signed like LiveKit's server SDKs sign them. */
function joinToken(room, { identity, secret = LIVEKIT_SECRET, expires = "5m" }) {
  return new SignJWT({
    name: "Visitor",
    video: { roomJoin: true, room, canPublish: true, canSubscribe: true, canPublishData: true },
  })
    .setProtectedHeader({ alg: "HS256" })
    .setIssuer("devkey")
    .setSubject(identity)
    .setIssuedAt()
    .setExpirationTime(expires)
    .sign(new TextEncoder().encode(secret));
}

/** The agent's turns so far, from the REST API. */
async function agentTurns(id) {
  const token = await apiToken();
  const response = await fetch(`${sandboxUrl}/api/v1/conversations/${id}`, { headers: { authorization: `Bearer ${token}` } });
  const conversation = await response.json();
  return conversation.history.filter((turn) => turn.role === "Assistant").map((turn) => turn.content);
}

async function stats(room) {
  const response = await fetch(`${sandboxUrl}/__sandbox/livekit/rooms/${room}`);
  return response.ok ? response.json() : null;
}

async function openPage() {
  const page = await browser.newPage();
  page.on("pageerror", (error) => console.error("page error:", error));
  // LK_CONSOLE=1 shows the page's console (livekit-client logs there) when a run needs it.
  if (process.env.LK_CONSOLE) page.on("console", (message) => console.log(`console.${message.type()}: ${message.text()}`));
  await page.goto(pageUrl);
  await page.waitForFunction(() => window.LK);
  if (process.env.LK_CONSOLE) await page.evaluate(() => window.LK.setLogLevel("debug"));
  return page;
}

/**
 * Joins `token`'s room with default options (the client tries /rtc/v1 first and falls back
 * to v0 on its 404), publishes the microphone, and records in `window.log` what the test
 * checks: agents, their states, transcriptions, subscriptions; `window.peakHz()` reads the
 * agent's audio.
 */
function joinRoom(page, url, token, options = {}) {
  return page.evaluate(
    async ({ url, token, options }) => {
      const { Room, RoomEvent } = window.LK;
      const log = (window.log = { states: [], transcriptions: [], agents: [], subscribed: [] });
      // What is said before the agent is there is recorded and sent to it once it is (a byte
      // stream on lk.agent.pre-connect-audio-buffer). In 2.23.0 only `publishDefaults` (or
      // the capture options) turn this on: setTrackEnabled merges publishDefaults with the
      // capture options, so `preConnectBuffer` in setMicrophoneEnabled's publish options
      // is ignored.
      const room = (window.room = new Room({ publishDefaults: { preConnectBuffer: true }, ...options }));
      const noteState = (participant) => {
        const state = participant.attributes?.["lk.agent.state"];
        if (state && log.states.at(-1) !== state) log.states.push(state);
      };
      room.on(RoomEvent.ParticipantConnected, (participant) => {
        log.agents.push({ identity: participant.identity, kind: participant.kind, isAgent: participant.isAgent });
        noteState(participant);
      });
      room.on(RoomEvent.ParticipantAttributesChanged, (_changed, participant) => noteState(participant));
      room.registerTextStreamHandler("lk.transcription", async (reader, from) => {
        const text = await reader.readAll();
        log.transcriptions.push({ from: from.identity, text, attributes: reader.info.attributes });
      });
      room.on(RoomEvent.TrackSubscribed, (track, _publication, participant) => {
        log.subscribed.push({ from: participant.identity, kind: track.kind });
        // A remote stream feeds an analyser only while an element consumes it (voice.md
        // §3.4); muted, so that nothing plays.
        const element = track.attach();
        element.muted = true;
        document.body.append(element);
        const context = new AudioContext();
        const source = context.createMediaStreamSource(new MediaStream([track.mediaStreamTrack]));
        const analyser = context.createAnalyser();
        analyser.fftSize = 8192;
        source.connect(analyser);
        window.peakHz = () => {
          const bins = new Float32Array(analyser.frequencyBinCount);
          analyser.getFloatFrequencyData(bins);
          let best = 0;
          for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
          return { hz: (best * context.sampleRate) / analyser.fftSize, db: bins[best] };
        };
      });
      await room.connect(url, token);
      // An agent already in the room comes with the join response, not as an event.
      for (const participant of room.remoteParticipants.values()) {
        log.agents.push({ identity: participant.identity, kind: participant.kind, isAgent: participant.isAgent });
        noteState(participant);
      }
      await room.localParticipant.setMicrophoneEnabled(true);
      return { state: room.state, identity: room.localParticipant.identity, server: room.serverInfo?.version };
    },
    { url, token, options },
  );
}

test("livekit-client joins, hears the agent, chats, and is heard", async (t) => {
  const conversation = await dispatch();
  const room = conversation.live_kit_room_name;
  // The URL and token the platform hands out for the conversation, as the BFF passes them on.
  assert.ok(conversation.live_kit_url && conversation.live_kit_participant_token, "the conversation offers LiveKit");
  const page = await openPage();

  const joined = await joinRoom(page, conversation.live_kit_url, conversation.live_kit_participant_token);
  assert.equal(joined.state, "connected");
  assert.equal(joined.server, "1.9.0");

  // The agent joins after the visitor (renegotiation) as an AGENT participant.
  const agents = await until(() => page.evaluate(() => window.log.agents.length && window.log.agents), {
    message: "the agent participant",
  });
  assert.match(agents[0].identity, /^agent-/);
  assert.equal(agents[0].kind, 4 /* ParticipantKind.AGENT */);
  assert.equal(agents[0].isAgent, true);
  await until(() => page.evaluate(() => window.log.subscribed.some((s) => s.kind === "audio")), {
    message: "the agent's track subscribed",
  });

  // The agent's greeting: a tone at 880 Hz while it speaks, and a finalised transcription.
  const peak = await until(
    async () => {
      const peak = await page.evaluate(() => window.peakHz?.());
      return peak && peak.db > -70 && Math.abs(peak.hz - TONE_HZ) <= 15 ? peak : null;
    },
    { message: "the agent's tone in the analyser", timeout: 20_000, interval: 100 },
  ).catch(async (error) => {
    throw new Error(`${error.message}; last peak ${JSON.stringify(await page.evaluate(() => window.peakHz?.()))}`);
  });
  assert.ok(Math.abs(peak.hz - TONE_HZ) <= 15, `peak at ${peak.hz} Hz`);
  t.diagnostic(`agent tone peak: ${peak.hz.toFixed(1)} Hz at ${peak.db.toFixed(1)} dB`);
  const greeting = await until(
    () => page.evaluate(() => window.log.transcriptions.find((t) => t.from.startsWith("agent-"))),
    { message: "the greeting transcription" },
  );
  assert.deepEqual([greeting.text], await agentTurns(conversation.id));
  assert.equal(greeting.attributes["lk.transcription_final"], "true");
  assert.ok(greeting.attributes["lk.segment_id"]);

  // The microphone reaches the stand-in, voiced (RFC 6464 level well above silence).
  const uplink = await until(
    async () => {
      const room_stats = await stats(room);
      const uplink = room_stats?.visitor.uplink;
      return uplink && uplink.packets > 0 && uplink.level_dbov_recent !== null && uplink.level_dbov_recent < 40 ? uplink : null;
    },
    { message: "a voiced uplink in the stand-in's stats" },
  );
  assert.ok(uplink.bytes > 0);
  t.diagnostic(`uplink: ${JSON.stringify(uplink)}`);
  const preconnect = await until(async () => (await stats(room))?.visitor.preconnect_bytes, {
    message: "the pre-connect audio at the agent",
  });
  t.diagnostic(`pre-connect audio: ${preconnect} bytes`);

  // Muting is signalled, and what still arrives is silence (or nothing).
  await page.evaluate(() => window.room.localParticipant.setMicrophoneEnabled(false));
  const muted = await until(
    async () => {
      const uplink = (await stats(room))?.visitor.uplink;
      return uplink?.muted && (uplink.level_dbov_recent === null || uplink.level_dbov_recent >= 100) ? uplink : null;
    },
    { message: "a muted, silent uplink" },
  );
  t.diagnostic(`muted uplink: ${JSON.stringify(muted)}`);
  await page.evaluate(() => window.room.localParticipant.setMicrophoneEnabled(true));
  await until(async () => (await stats(room))?.visitor.uplink.muted === false, { message: "unmuted" });

  // A typed message is the visitor's transcription and gets the scripted reply.
  await page.evaluate(() => window.room.localParticipant.sendText("hello", { topic: "lk.chat" }));
  const echoed = await until(
    () => page.evaluate((me) => window.log.transcriptions.find((t) => t.from === me), joined.identity),
    { message: "the visitor's own transcription" },
  );
  assert.equal(echoed.text, "hello");
  assert.ok(echoed.attributes["lk.segment_id"]);
  const reply = await until(
    () => page.evaluate(() => window.log.transcriptions.filter((t) => t.from.startsWith("agent-"))[1]),
    { message: "the scripted reply" },
  );
  assert.equal(reply.text, (await agentTurns(conversation.id))[1]);
  assert.equal(reply.attributes["lk.transcription_final"], "true");
  assert.deepEqual((await stats(room)).visitor.chats, ["hello"]);

  // The agent's states, as the client saw them.
  const states = await until(
    () => page.evaluate(() => window.log.states.at(-1) === "listening" && window.log.states.includes("thinking") && window.log.states),
    { message: "the agent back to listening after its reply" },
  );
  t.diagnostic(`agent states: ${states.join(" → ")}`);
  if (!STACK) assert.deepEqual(states.slice(0, 2), ["initializing", "listening"]);
  assert.ok(states.indexOf("speaking") < states.lastIndexOf("thinking"), "the greeting is spoken before the reply");
  const afterChat = states.slice(states.lastIndexOf("thinking"));
  assert.deepEqual(afterChat, ["thinking", "speaking", "listening"]);

  // A network failure: the stand-in drops the visitor with no leave and refuses it for a
  // second; the client reconnects in full and finds the same agent.
  await page.evaluate(() => {
    const { RoomEvent } = window.LK;
    window.log.reconnect = [];
    window.room.on(RoomEvent.Reconnecting, () => window.log.reconnect.push("reconnecting"));
    window.room.on(RoomEvent.Reconnected, () => window.log.reconnect.push("reconnected"));
  });
  const severed = await fetch(`${sandboxUrl}/__sandbox/livekit/rooms/${room}/sever`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ refuse_ms: 1000 }),
  });
  assert.equal(severed.status, 204);
  await until(() => page.evaluate(() => window.log.reconnect.join() === "reconnecting,reconnected"), {
    message: "reconnected after the network failure",
    timeout: 30_000,
  });
  const after = await page.evaluate(() => ({
    state: window.room.state,
    agents: [...window.room.remoteParticipants.values()].map((p) => p.identity),
  }));
  assert.deepEqual(after, { state: "connected", agents: [agents[0].identity] });

  // The conversation ends: the stand-in sends leave, and the client disconnects.
  await fetch(`${sandboxUrl}/__sandbox/conversations/${conversation.id}/end`, { method: "POST" });
  await until(() => page.evaluate(() => window.room.state === "disconnected"), { message: "disconnected after the end" });
  await page.close();
});

test("refused tokens are ConnectionError NotAllowed", async () => {
  const conversation = await dispatch();
  const room = conversation.live_kit_room_name;
  const page = await openPage();
  const attempt = (token) =>
    page.evaluate(
      async ({ url, token }) => {
        const { Room, ConnectionError } = window.LK;
        try {
          const room = new Room();
          await room.connect(url, token);
          await room.disconnect();
          return { connected: true };
        } catch (error) {
          return { isConnectionError: error instanceof ConnectionError, reason: error.reason, status: error.status, message: error.message };
        }
      },
      { url: conversation.live_kit_url, token },
    );
  // Each differs from the conversation's own token in one thing only.
  const identity = claimsOf(conversation.live_kit_participant_token).sub;
  const cases = {
    expired: await joinToken(room, { identity, expires: Math.floor(Date.now() / 1000) - 3600 }),
    "wrong secret": await joinToken(room, { identity, secret: "not-the-secret" }),
    "other room": await joinToken(`web-${randomUUID().replaceAll("-", "")}`, { identity }),
  };
  assert.equal((await attempt(await joinToken(room, { identity }))).connected, true, "the control token joins");
  for (const [name, token] of Object.entries(cases)) {
    const result = await attempt(token);
    assert.equal(result.isConnectionError, true, `${name}: ${JSON.stringify(result)}`);
    assert.equal(result.reason, 0 /* ConnectionErrorReason.NotAllowed */, `${name}: ${JSON.stringify(result)}`);
  }
  await page.close();
});

test("a visitor who joins after the agent finds it in the room and hears its greeting", async (t) => {
  const conversation = await dispatch();
  const room = conversation.live_kit_room_name;
  // The agent is in the room before the visitor: no renegotiation, it comes in the join.
  await until(async () => (await agentTurns(conversation.id)).length > 0, { message: "the agent active", timeout: 10_000 });
  const page = await openPage();
  // Straight to v0 this time, as `singlePeerConnection: false` asks.
  const joined = await joinRoom(page, conversation.live_kit_url, conversation.live_kit_participant_token, {
    singlePeerConnection: false,
  });
  assert.equal(joined.state, "connected");
  const agents = await page.evaluate(() => window.log.agents);
  assert.equal(agents.length, 1);
  assert.equal(agents[0].kind, 4 /* ParticipantKind.AGENT */);
  const peak = await until(
    async () => {
      const peak = await page.evaluate(() => window.peakHz?.());
      return peak && peak.db > -70 && Math.abs(peak.hz - TONE_HZ) <= 15 ? peak : null;
    },
    { message: "the agent's tone", timeout: 20_000, interval: 100 },
  );
  t.diagnostic(`agent tone peak: ${peak.hz.toFixed(1)} Hz`);
  const greeting = await until(
    () => page.evaluate(() => window.log.transcriptions.find((t) => t.from.startsWith("agent-"))),
    { message: "the greeting transcription" },
  );
  assert.deepEqual([greeting.text], await agentTurns(conversation.id));
  await page.evaluate(() => window.room.disconnect());
  await until(async () => (await stats(room))?.visitor.connected === false, { message: "the visitor gone from the stats" });
  await page.close();
});
