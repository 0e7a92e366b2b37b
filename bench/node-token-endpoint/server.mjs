// The BFF's token endpoint written the way a Node team would (express + jose), so that
// `cargo xtask bench` can compare the two on the same machine and the same load. It does
// the token work the BFF does on the two benchmarked routes and nothing the bench does not
// reach: no platform calls, no rate limits, no metrics, no CORS.
//
//   POST /v1/sessions          widget header, JSON object body {agent_id}, origin and agent
//                              allowlists, then an EdDSA JWT with the BFF's claims → 201
//   GET  /v1/conversations/:id a bearer token verified with the BFF's checks (alg pinned,
//                              typ, iss, aud, required claims, exp/nbf with 5 s leeway);
//                              then, as in the BFF, 404 unless the token is bound to :id
//
// Configuration comes from the environment, set by xtask:
//   PORT (0 picks a free one), PUBLIC_URL (iss, default the listening address; aud is
//   `${PUBLIC_URL}/v1`),
//   AGENTS: JSON {"<agent id>": {"title": "...", "origins": ["http://..."]}}, TOKEN_TTL_SECS.
// It prints `listening on http://127.0.0.1:<port>` once it accepts connections.

import { randomBytes, randomUUID } from "node:crypto";
import express from "express";
import { SignJWT, calculateJwkThumbprint, exportJWK, generateKeyPair, jwtVerify } from "jose";

const TOKEN_TYPE = "speaknode-widget+jwt";
const LEEWAY_SECS = 5;
const MAX_LIFETIME_SECS = 600;
const MAX_TOKEN_LEN = 4096;

// Like the BFF, without PUBLIC_URL the listening address is the issuer (set once bound).
let publicUrl = (process.env.PUBLIC_URL ?? "").replace(/\/+$/, "");
const ttlSecs = Number(process.env.TOKEN_TTL_SECS ?? 300);
// Agent id → { title, origins: Set }; the title stands for the BFF's cached agent lookup.
const agents = new Map(
  Object.entries(JSON.parse(process.env.AGENTS ?? "{}")).map(([id, a]) => [
    id,
    { title: a.title, origins: new Set(a.origins) },
  ]),
);
const anyOrigin = new Set([...agents.values()].flatMap((a) => [...a.origins]));
let issuer = publicUrl;
let audience = `${publicUrl}/v1`;

const { privateKey, publicKey } = await generateKeyPair("EdDSA", { crv: "Ed25519" });
const kid = await calculateJwkThumbprint(await exportJWK(publicKey));

const problem = (res, status, code, detail) =>
  res
    .status(status)
    .type("application/problem+json")
    .send(JSON.stringify({ type: "about:blank", title: code, status, detail, code }));

const app = express();
app.disable("x-powered-by");
app.disable("etag");
app.use((_req, res, next) => {
  // The BFF's response headers on every answer.
  res.set({ "cache-control": "no-store", "x-content-type-options": "nosniff" });
  next();
});
// Strict JSON, 16 KiB as the BFF allows; a bad body becomes a problem, not an HTML page.
app.use(express.json({ limit: "16kb", strict: true, type: "application/json" }));
app.use((err, _req, res, next) =>
  err ? problem(res, err.status ?? 400, "invalid_request", "unreadable body") : next(),
);

app.post("/v1/sessions", async (req, res, next) => {
  try {
    if (req.get("x-speaknode-widget") !== "1") {
      return problem(res, 400, "missing_widget_header", "the widget header is missing");
    }
    if (!req.is("application/json")) {
      return problem(res, 415, "invalid_request", "the body must be JSON");
    }
    const body = req.body;
    const keys = body && typeof body === "object" && !Array.isArray(body) ? Object.keys(body) : [];
    if (keys.length !== 1 || keys[0] !== "agent_id" || typeof body.agent_id !== "string") {
      return problem(res, 400, "invalid_request", "expected {agent_id}");
    }
    const origin = req.get("origin");
    if (!origin || !anyOrigin.has(origin)) {
      return problem(res, 403, "origin_not_allowed", "origin not allowed");
    }
    const agent = agents.get(body.agent_id);
    if (!agent) return problem(res, 404, "agent_not_found", "no such agent");
    if (!agent.origins.has(origin)) {
      return problem(res, 403, "origin_not_allowed", "origin not allowed");
    }
    const now = Math.floor(Date.now() / 1000);
    const exp = now + ttlSecs;
    const token = await new SignJWT({
      agent_id: body.agent_id,
      origin,
      scope: "conversation:start",
    })
      .setProtectedHeader({ alg: "EdDSA", typ: TOKEN_TYPE, kid })
      .setIssuer(issuer)
      .setAudience(audience)
      .setSubject(`v_${randomBytes(16).toString("base64url")}`)
      .setJti(randomUUID())
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(exp)
      .sign(privateKey);
    res.status(201).json({
      token,
      expires_at: exp,
      agent: { id: body.agent_id, name: agent.title },
    });
  } catch (error) {
    next(error);
  }
});

app.get("/v1/conversations/:id", async (req, res, next) => {
  try {
    const [scheme, token] = (req.get("authorization") ?? "").split(" ", 2);
    if (scheme?.toLowerCase() !== "bearer" || !token || token.length > MAX_TOKEN_LEN) {
      return problem(res, 401, "invalid_token", "no bearer token");
    }
    let claims;
    try {
      ({ payload: claims } = await jwtVerify(token.trim(), publicKey, {
        algorithms: ["EdDSA"],
        typ: TOKEN_TYPE,
        issuer,
        audience,
        clockTolerance: LEEWAY_SECS,
        requiredClaims: ["exp", "nbf", "iss", "aud", "sub", "iat", "jti", "agent_id", "origin", "scope"],
      }));
    } catch (error) {
      const code = error?.code === "ERR_JWT_EXPIRED" ? "token_expired" : "invalid_token";
      return problem(res, 401, code, "the widget token is invalid");
    }
    const shapeOk =
      (claims.scope === "conversation:start" && claims.conversation_id === undefined) ||
      (claims.scope === "conversation:read" && typeof claims.conversation_id === "string");
    if (!shapeOk || claims.exp - claims.nbf > MAX_LIFETIME_SECS || claims.iat > claims.exp) {
      return problem(res, 401, "invalid_token", "the widget token is invalid");
    }
    // The BFF would now ask the platform for the token's own conversation; any other id is
    // 404 without a platform call, which is the path the bench measures on both sides.
    if (claims.scope !== "conversation:read" || claims.conversation_id !== req.params.id) {
      return problem(res, 404, "not_found", "not found");
    }
    return problem(res, 501, "internal", "this stand-in has no platform to ask");
  } catch (error) {
    next(error);
  }
});

app.use((_req, res) => problem(res, 404, "not_found", "not found"));

const server = app.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => {
  const { port } = server.address();
  if (!publicUrl) {
    publicUrl = `http://127.0.0.1:${port}`;
    [issuer, audience] = [publicUrl, `${publicUrl}/v1`];
  }
  console.log(`listening on http://127.0.0.1:${port}`);
});
// keep-alive as long as the load generator's connections live (Node's default is 5 s).
server.keepAliveTimeout = 60_000;
process.on("SIGTERM", () => server.close(() => process.exit(0)));
