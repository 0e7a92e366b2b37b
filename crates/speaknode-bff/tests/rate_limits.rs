//! Attack case 6 of the security research (bff-security.md §6): minting is rate limited per
//! client, per agent and globally, answers 429 with `Retry-After`, cannot be dodged with a
//! forged `X-Forwarded-For`, and holds across replicas that share a real Redis.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use reqwest::header::{ORIGIN, RETRY_AFTER};
use secrecy::SecretString;
use speaknode_api::{WIDGET_HEADER, WIDGET_HEADER_VALUE, paths};
use speaknode_bff::{Config, Rate};

/// Mints as `Stack::mint` does, with an `X-Forwarded-For` header when given.
async fn mint_via(stack: &Stack, forwarded: Option<&str>, origin: &str, agent: &str) -> Reply {
    let mut request = stack
        .http
        .post(stack.url(paths::SESSIONS))
        .header(WIDGET_HEADER, WIDGET_HEADER_VALUE)
        .header(ORIGIN, origin)
        .json(&serde_json::json!({ "agent_id": agent }));
    if let Some(forwarded) = forwarded {
        request = request.header("x-forwarded-for", forwarded);
    }
    stack.send(request).await
}

/// Asserts a 429 `rate_limited` problem whose `Retry-After` header and `retry_after`
/// member agree and lie within one interval of `rate`.
fn assert_rate_limited(reply: &Reply, rate: Rate) {
    reply.assert_problem(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let header: u64 = reply.headers[RETRY_AFTER]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("Retry-After in seconds");
    assert_eq!(reply.json()["retry_after"], header, "{reply:?}");
    let interval = 60 / u64::from(rate.per_minute);
    assert!((1..=interval).contains(&header), "{header} s for {rate:?}");
}

fn slow(burst: u32) -> Rate {
    Rate {
        per_minute: 1,
        burst,
    }
}

#[tokio::test]
async fn attack_06_a_burst_from_one_client_is_refused_with_retry_after() {
    let stack = Stack::start_with(|config| config.limits.per_ip = slow(3)).await;
    for _ in 0..3 {
        let reply = stack.mint(Some(ORIGIN_A), AGENT_A).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    assert_rate_limited(&stack.mint(Some(ORIGIN_A), AGENT_A).await, slow(3));
    // Every attempt counts against the client, even ones refused for their origin, so
    // probing origins or agents is limited too; other agents are no way around it.
    assert_rate_limited(&stack.mint(Some(ORIGIN_B), AGENT_B).await, slow(3));
    assert_rate_limited(
        &stack.mint(Some("https://evil.com"), AGENT_A).await,
        slow(3),
    );
}

#[tokio::test]
async fn attack_06_the_agent_limit_holds_across_clients() {
    // Behind a trusted proxy each forwarded address is its own client, so only the
    // agent's limit can refuse here.
    let stack = Stack::start_with(|config| {
        config.limits.per_agent = slow(2);
        config.limits.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    for client in ["198.51.100.1", "198.51.100.2"] {
        let reply = mint_via(&stack, Some(client), ORIGIN_A, AGENT_A).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    let third = mint_via(&stack, Some("198.51.100.3"), ORIGIN_A, AGENT_A).await;
    assert_rate_limited(&third, slow(2));
    // Another agent has its own allowance.
    let other = mint_via(&stack, Some("198.51.100.3"), ORIGIN_B, AGENT_B).await;
    assert_eq!(other.status, StatusCode::CREATED, "{other:?}");
}

#[tokio::test]
async fn attack_06_refused_origins_do_not_spend_an_agents_allowance() {
    // A page that may not embed the agent cannot lock out the pages that may.
    let stack = Stack::start_with(|config| config.limits.per_agent = slow(1)).await;
    for _ in 0..3 {
        stack
            .mint(Some("https://evil.com"), AGENT_A)
            .await
            .assert_problem(StatusCode::FORBIDDEN, "origin_not_allowed");
    }
    let reply = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
}

#[tokio::test]
async fn attack_06_the_global_limit_caps_all_agents_together() {
    let stack = Stack::start_with(|config| config.limits.global = slow(2)).await;
    assert_eq!(
        stack.mint(Some(ORIGIN_A), AGENT_A).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        stack.mint(Some(ORIGIN_B), AGENT_B).await.status,
        StatusCode::CREATED
    );
    assert_rate_limited(&stack.mint(Some(ORIGIN_DEV), AGENT_A).await, slow(2));
    assert_rate_limited(&stack.mint(Some(ORIGIN_B), AGENT_B).await, slow(2));
}

#[tokio::test]
async fn attack_06_xff_spoofing_does_not_change_the_rate_limit_key() {
    // No trusted proxy: the TCP peer is the client, whatever it claims to forward.
    let stack = Stack::start_with(|config| config.limits.per_ip = slow(2)).await;
    for forged in ["203.0.113.1", "203.0.113.2"] {
        let reply = mint_via(&stack, Some(forged), ORIGIN_A, AGENT_A).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    for forged in [
        "203.0.113.3",
        "2001:db8::1",
        "unknown",
        "203.0.113.4, 127.0.0.1",
    ] {
        let reply = mint_via(&stack, Some(forged), ORIGIN_A, AGENT_A).await;
        assert_rate_limited(&reply, slow(2));
    }
    assert_rate_limited(&mint_via(&stack, None, ORIGIN_A, AGENT_A).await, slow(2));
}

#[tokio::test]
async fn attack_06_behind_a_trusted_proxy_only_the_forwarded_client_is_the_key() {
    let stack = Stack::start_with(|config| {
        config.limits.per_ip = slow(1);
        config.limits.trusted_proxies = vec!["127.0.0.0/8".into()];
    })
    .await;
    let created = |reply: Reply| assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    created(mint_via(&stack, Some("198.51.100.7"), ORIGIN_A, AGENT_A).await);
    assert_rate_limited(
        &mint_via(&stack, Some("198.51.100.7"), ORIGIN_A, AGENT_A).await,
        slow(1),
    );
    // The proxy appends what it saw to whatever the client sent: entries left of the
    // right-most untrusted one are the client's own words and change nothing.
    for forged in [
        "203.0.113.9, 198.51.100.7",
        "1.1.1.1, 2.2.2.2, 198.51.100.7",
    ] {
        assert_rate_limited(
            &mint_via(&stack, Some(forged), ORIGIN_A, AGENT_A).await,
            slow(1),
        );
    }
    // A chain of trusted hops is skipped to the first untrusted address.
    created(mint_via(&stack, Some("198.51.100.8, 127.0.0.2"), ORIGIN_A, AGENT_A).await);
    assert_rate_limited(
        &mint_via(&stack, Some("198.51.100.8"), ORIGIN_A, AGENT_A).await,
        slow(1),
    );
}

/// A real `redis-server` on a free loopback port, killed when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    url: String,
}

impl RedisServer {
    async fn start() -> Self {
        // redis-server has no `--port 0`: take a free port from the OS and hand it over.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            child: Self::spawn(port),
            port,
            url: format!("redis://127.0.0.1:{port}"),
        };
        server.wait_until_it_answers().await;
        server
    }

    fn spawn(port: u16) -> Child {
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "this test needs redis-server on PATH and could not start it ({error}); \
                     `cargo xtask setup` installs it (apt-get install redis-server)"
                )
            })
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port, empty.
    async fn restart(&mut self) {
        self.stop();
        self.child = Self::spawn(self.port);
        self.wait_until_it_answers().await;
    }

    async fn wait_until_it_answers(&mut self) {
        let client = redis::Client::open(self.url.as_str()).expect("a Redis URL");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
                    .is_ok_and(|pong| pong == "PONG")
            {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("redis-server exited ({status}) before answering PING");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer PING within 10 s"
            );
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn with_redis(url: &str, adjust: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    let url = SecretString::from(url.to_owned());
    move |config: &mut Config| {
        config.limits.redis_url = Some(url);
        adjust(config);
    }
}

#[tokio::test]
async fn attack_06_two_replicas_sharing_redis_share_the_agent_limit() {
    let redis = RedisServer::start().await;
    let rate = slow(3);
    let first = Stack::start_with(with_redis(&redis.url, |c| c.limits.per_agent = rate)).await;
    let second = Stack::start_with(with_redis(&redis.url, |c| c.limits.per_agent = rate)).await;
    for replica in [&first, &second, &first] {
        let reply = replica.mint(Some(ORIGIN_A), AGENT_A).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{reply:?}");
    }
    // Each replica alone has minted at most two: only a shared count refuses now.
    assert_rate_limited(&second.mint(Some(ORIGIN_A), AGENT_A).await, rate);
    assert_rate_limited(&first.mint(Some(ORIGIN_A), AGENT_A).await, rate);
    let other = second.mint(Some(ORIGIN_B), AGENT_B).await;
    assert_eq!(other.status, StatusCode::CREATED, "{other:?}");
    for replica in [&first, &second] {
        let ready = replica.send(replica.http.get(replica.url("/readyz"))).await;
        assert_eq!(ready.status, StatusCode::OK, "{ready:?}");
    }
}

#[tokio::test]
async fn attack_06_an_unreachable_redis_fails_closed() {
    let dead = closed_port().await.replace("http://", "redis://");
    let stack = Stack::start_with(with_redis(&dead, |_| {})).await;
    let reply = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
    assert!(reply.headers.contains_key(RETRY_AFTER));
    let port = dead.rsplit(':').next().expect("port");
    assert!(!reply.body.contains(port), "{reply:?}");
    let ready = stack.send(stack.http.get(stack.url("/readyz"))).await;
    ready.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
}

#[tokio::test]
async fn attack_06_a_redis_outage_fails_closed_and_minting_resumes_after_it() {
    let mut redis = RedisServer::start().await;
    let stack = Stack::start_with(with_redis(&redis.url, |_| {})).await;
    let minted = stack.mint(Some(ORIGIN_A), AGENT_A).await;
    assert_eq!(minted.status, StatusCode::CREATED, "{minted:?}");

    redis.stop();
    stack
        .mint(Some(ORIGIN_A), AGENT_A)
        .await
        .assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");

    // The connection is made again on demand; no restart of the BFF is needed.
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let reply = stack.mint(Some(ORIGIN_A), AGENT_A).await;
        if reply.status == StatusCode::CREATED {
            break;
        }
        reply.assert_problem(StatusCode::SERVICE_UNAVAILABLE, "upstream_unavailable");
        assert!(
            tokio::time::Instant::now() < deadline,
            "minting did not resume within 10 s of Redis coming back"
        );
    }
}
