//! The operations side of the BFF over HTTP: its OpenAPI document, metrics, readiness and
//! request ids.

mod common;

use std::collections::BTreeSet;

use common::*;
use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;
use speaknode_api::{WIDGET_HEADER, paths};

/// Every route the router serves, as (method, OpenAPI path).
fn served_routes() -> BTreeSet<(String, String)> {
    [
        ("post", paths::SESSIONS.to_owned()),
        ("post", paths::CONVERSATIONS.to_owned()),
        ("get", paths::conversation("{id}")),
        ("post", paths::conversation_token("{id}")),
        ("post", paths::conversation_end("{id}")),
        ("post", paths::conversation_feedback("{id}")),
        ("get", paths::conversation_events("{id}")),
        ("get", "/.well-known/jwks.json".to_owned()),
        ("get", "/healthz".to_owned()),
        ("get", "/readyz".to_owned()),
        ("get", "/metrics".to_owned()),
        ("get", "/openapi.json".to_owned()),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_owned(), path))
    .collect()
}

#[tokio::test]
async fn the_openapi_document_parses_and_lists_every_route_the_router_serves() {
    let stack = Stack::start().await;
    let reply = stack.send(stack.http.get(stack.url("/openapi.json"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    assert_eq!(reply.headers[CONTENT_TYPE], "application/json");
    let _: utoipa::openapi::OpenApi =
        serde_json::from_str(&reply.body).expect("a valid OpenAPI document");
    let doc = reply.json();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                documented.insert((method.clone(), path.clone()));
            }
        }
    }
    assert_eq!(documented, served_routes());

    // Each documented operation reaches its handler (a bare request is refused by the
    // handler's own checks, never by the 404/405 fallbacks); an undocumented path does not.
    for (method, path) in &documented {
        let url = stack.url(&path.replace("{id}", "x"));
        let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
        let reply = stack.send(stack.http.request(method.clone(), url)).await;
        assert!(
            ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED].contains(&reply.status),
            "{method} {path} is documented but not served: {reply:?}"
        );
    }
    let unknown = stack.send(stack.http.get(stack.url("/v1/admin"))).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);

    // The token routes need the bearer scheme; minting needs the widget header and Origin.
    let operation = |method: &str, path: &str| doc["paths"][path][method].clone();
    let scheme = &doc["components"]["securitySchemes"]["widget_token"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    for (method, path) in [
        ("post", paths::CONVERSATIONS.to_owned()),
        ("get", paths::conversation("{id}")),
        ("post", paths::conversation_token("{id}")),
        ("post", paths::conversation_end("{id}")),
        ("post", paths::conversation_feedback("{id}")),
        ("get", paths::conversation_events("{id}")),
    ] {
        let security = operation(method, &path)["security"].to_string();
        assert!(
            security.contains("widget_token"),
            "{method} {path}: {security}"
        );
    }
    let mint = operation("post", paths::SESSIONS);
    let header = |name: &str| {
        mint["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == name && p["in"] == "header")
            .cloned()
            .unwrap_or_else(|| panic!("no {name} header parameter: {mint}"))
    };
    assert_eq!(header(WIDGET_HEADER)["required"], true);
    assert_eq!(header("Origin")["required"], true);
    assert_eq!(
        doc["components"]["schemas"]["WidgetProtocol"]["enum"],
        serde_json::json!(["1"])
    );
    assert!(mint["requestBody"]["content"]["application/json"].is_object());

    // Every error response is a problem document; 429 and 503 say when to retry.
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            for (status, response) in operation["responses"].as_object().expect("responses") {
                if status.starts_with('4') || status.starts_with('5') {
                    let schema = &response["content"]["application/problem+json"]["schema"];
                    assert_eq!(
                        schema["$ref"], "#/components/schemas/Problem",
                        "{method} {path} {status}"
                    );
                }
                if status == "429" || status == "503" {
                    assert!(
                        response["headers"]["Retry-After"].is_object(),
                        "{method} {path}"
                    );
                }
            }
        }
    }
    let statuses = |method: &str, path: &str| -> Vec<String> {
        operation(method, path)["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .cloned()
            .collect()
    };
    for status in ["201", "400", "403", "404", "413", "415", "429", "503"] {
        assert!(
            statuses("post", paths::SESSIONS).contains(&status.to_owned()),
            "{status}"
        );
    }
}

/// The value of the sample `name` (with its labels, as exposed) in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

#[tokio::test]
async fn metrics_count_mints_refusals_and_platform_calls() {
    let stack = Stack::start().await;
    let (id, token) = stack.started(ORIGIN_A, AGENT_A).await;
    stack.read_conversation(&token, &id).await;
    stack.mint(Some("https://evil.com"), AGENT_A).await;
    stack.send(stack.http.get(stack.url("/nowhere"))).await;

    let reply = stack.send(stack.http.get(stack.url("/metrics"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(
        reply.headers[CONTENT_TYPE]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let text = &reply.body;
    let value = |name: &str| sample(text, name).unwrap_or_else(|| panic!("{name} in\n{text}"));
    assert_eq!(
        value("speaknode_bff_tokens_minted_total{scope=\"conversation:start\"}"),
        1.0
    );
    assert_eq!(
        value("speaknode_bff_tokens_minted_total{scope=\"conversation:read\"}"),
        1.0
    );
    assert_eq!(
        value("speaknode_bff_refusals_total{code=\"origin_not_allowed\"}"),
        1.0
    );
    assert_eq!(
        value("speaknode_bff_refusals_total{code=\"not_found\"}"),
        1.0
    );
    for call in ["get_agent", "dispatch_web", "get_conversation"] {
        let count =
            format!("speaknode_bff_upstream_request_duration_seconds_count{{call=\"{call}\"}}");
        assert_eq!(value(&count), 1.0, "{call}");
    }
    assert!(value("speaknode_bff_upstream_token_fetches_total") >= 1.0);
    assert_eq!(value("speaknode_bff_open_event_streams"), 0.0);
    for secret in [CLIENT_SECRET, &token, &id] {
        assert!(!text.contains(secret), "metrics must name no secret or id");
    }
}

#[tokio::test]
async fn readiness_needs_a_platform_token() {
    let stack = Stack::start().await;
    let ready = stack.send(stack.http.get(stack.url("/readyz"))).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready")
    );

    let dead = closed_port().await;
    let stack = Stack::start_with(|config| {
        config.upstream.issuer = format!("{dead}/realms/speaknode");
        config.upstream.api_base = dead.clone();
    })
    .await;
    let reply = stack.send(stack.http.get(stack.url("/readyz"))).await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    assert!(!reply.body.contains(dead.rsplit(':').next().expect("port")));
    // Liveness does not depend on the platform.
    let health = stack.send(stack.http.get(stack.url("/healthz"))).await;
    assert_eq!(health.status, StatusCode::OK);
}

#[tokio::test]
async fn request_ids_are_made_when_absent_and_kept_when_usable() {
    let stack = Stack::start().await;
    let id_of = |reply: &Reply| {
        reply.headers["x-request-id"]
            .to_str()
            .expect("ascii")
            .to_owned()
    };
    let made = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    let made = id_of(&made);
    assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");

    let kept = stack
        .send(
            stack
                .http
                .get(stack.url("/v1/admin"))
                .header("x-request-id", "trace-42.a_b:c"),
        )
        .await;
    kept.assert_problem(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(id_of(&kept), "trace-42.a_b:c", "problems carry it too");

    for unusable in ["a".repeat(65), "has space".into(), "quote\"d".into()] {
        let reply = stack
            .send(
                stack
                    .http
                    .get(stack.url("/healthz"))
                    .header("x-request-id", &unusable),
            )
            .await;
        let id = id_of(&reply);
        assert_ne!(id, unusable);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    }

    // The widget can read it across origins, to quote it in a support request.
    let reply = stack.mint(Some(ORIGIN_A), "not-configured").await;
    let exposed = reply.headers["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}
