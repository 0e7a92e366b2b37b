//! Rate limits on minting: per client IP, per agent and for the whole BFF, counted in this
//! process's memory or, when several replicas must share them, in Redis.
//!
//! Both stores run one algorithm, GCRA (the generic cell rate algorithm, as in `governor`):
//! a key holds one timestamp, the theoretical arrival time (TAT) of its next request. A
//! [`Rate`] of `per_minute` with `burst` lets `burst` requests through at once and then one
//! every `60 s / per_minute`. The memory store does the arithmetic in Rust; the Redis store
//! does the same arithmetic in a Lua script on Redis' own clock, so replicas share one count
//! and one clock. Refused requests do not count: a client that keeps retrying still gets
//! through at the configured rate, and no more.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use axum::http::HeaderMap;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::ExposeSecret;
use tokio::time::Instant;

use crate::config::{LimitsConfig, Rate};

/// The header reverse proxies append the address of their client to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";
/// The memory store forgets expired keys when it holds this many, and refuses new keys while
/// it still does: an address-spraying client must not grow the BFF's memory without bound.
const MAX_MEMORY_KEYS: usize = 100_000;
/// Redis keys start with this, so the BFF's keys are easy to find and never collide.
const REDIS_PREFIX: &str = "speaknode-bff:ratelimit:";
/// How long one Redis round trip (connecting included) may take before the mint fails.
const REDIS_TIMEOUT: Duration = Duration::from_millis(500);

/// GCRA in Lua; the same arithmetic as [`gcra`]. KEYS[1] is the key, ARGV[1] the emission
/// interval and ARGV[2] the burst, in milliseconds and requests. Returns 0 when the request
/// may pass, else the milliseconds to wait. Redis' `TIME` is the clock, so replicas whose
/// clocks differ still agree; milliseconds since the epoch fit a Lua number exactly.
const GCRA_LUA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local emission = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + emission
local allow_at = new_tat - emission * tonumber(ARGV[2])
if now < allow_at then return allow_at - now end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', new_tat - now)
return 0
";

/// Which limit refused a request; also a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    Ip,
    Agent,
    Global,
}

impl Limit {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::Agent => "agent",
            Self::Global => "global",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a request may not mint now.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LimitError {
    #[error("the {limit} rate limit is exhausted (retry after {retry_after} s)")]
    Exceeded { limit: Limit, retry_after: u64 },
    #[error(transparent)]
    Unavailable(#[from] StoreUnavailable),
}

/// The store could not answer; the message is for the log only.
#[derive(Debug, thiserror::Error)]
#[error("the rate limit store is unavailable: {0}")]
pub(crate) struct StoreUnavailable(String);

/// What a limit says about one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allow,
    Deny { retry_after: Duration },
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A store of GCRA states, shared by the three limits.
pub(crate) trait Store: Send + Sync {
    /// Counts one request against `key` if `rate` lets it through.
    fn check<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Verdict, StoreUnavailable>>;
    /// Whether the store answers, for readiness.
    fn ping(&self) -> BoxFuture<'_, Result<(), StoreUnavailable>>;
}

/// The three limits on minting, their store and how to tell who the client is.
pub(crate) struct Limits {
    store: Box<dyn Store>,
    per_ip: Rate,
    per_agent: Rate,
    global: Rate,
    trusted_proxies: Vec<IpNet>,
}

impl Limits {
    pub(crate) fn new(config: &LimitsConfig) -> anyhow::Result<Self> {
        let store: Box<dyn Store> = match &config.redis_url {
            Some(url) => Box::new(RedisStore::new(url.expose_secret())?),
            None => Box::new(MemoryStore::default()),
        };
        let trusted_proxies = config
            .trusted_proxies
            .iter()
            .map(|proxy| proxy.parse())
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            store,
            per_ip: config.per_ip,
            per_agent: config.per_agent,
            global: config.global,
            trusted_proxies,
        })
    }

    /// Counts a mint attempt against its client's limit.
    pub(crate) async fn check_client(&self, client: IpAddr) -> Result<(), LimitError> {
        self.check(Limit::Ip, &client_key(client), self.per_ip)
            .await
    }

    /// Counts a mint that is about to reach the platform against its agent's limit and the
    /// global one. The agent's comes first, so one busy agent does not use up the global
    /// allowance with requests its own limit refuses anyway.
    pub(crate) async fn check_agent(&self, agent_id: &str) -> Result<(), LimitError> {
        self.check(Limit::Agent, &format!("agent:{agent_id}"), self.per_agent)
            .await?;
        self.check(Limit::Global, "global", self.global).await
    }

    /// Whether the store answers.
    pub(crate) async fn ping(&self) -> Result<(), StoreUnavailable> {
        self.store.ping().await
    }

    /// When the store cannot answer, the mint is refused (503), not waved through: minting
    /// costs money and platform capacity, and a limit that lapses whenever Redis is down
    /// is one an attacker can switch off. Readiness reports the outage, so it is seen.
    async fn check(&self, limit: Limit, key: &str, rate: Rate) -> Result<(), LimitError> {
        match self.store.check(key, rate).await? {
            Verdict::Allow => Ok(()),
            Verdict::Deny { retry_after } => Err(LimitError::Exceeded {
                limit,
                // Whole seconds, rounded up, so a client that waits as told gets through.
                retry_after: retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            }),
        }
    }

    /// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
    /// right-most `X-Forwarded-For` entry that is not a trusted proxy. Entries further left
    /// were written by the client itself and prove nothing.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|net| net.contains(ip));
        let mut client = peer.to_canonical();
        if !trusted(client) {
            return client;
        }
        // Several header lines form one list, in order; walk it from the right.
        for line in headers.get_all(X_FORWARDED_FOR).iter().rev() {
            let Ok(line) = line.to_str() else {
                return client;
            };
            for entry in line.rsplit(',') {
                // An entry that is no address (`unknown`, garbage) ends the walk at the
                // last proxy that was trusted: the strictest key that is still right.
                let Some(ip) = parse_forwarded(entry) else {
                    return client;
                };
                client = ip;
                if !trusted(ip) {
                    return client;
                }
            }
        }
        client
    }
}

/// An X-Forwarded-For entry: an address, possibly with a port or in brackets.
fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = entry
        .parse::<IpAddr>()
        .or_else(|_| entry.parse::<std::net::SocketAddr>().map(|s| s.ip()))
        .or_else(|_| entry.trim_matches(['[', ']']).parse::<IpAddr>())
        .ok()?;
    Some(ip.to_canonical())
}

/// The key of a client: its IPv4 address, or its IPv6 /64 network.
fn client_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let network = Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
            format!("ip:{network}/64")
        }
    }
}

/// An IP network in CIDR notation; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for IpNet {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = addr
            .parse::<IpAddr>()
            .context("not an IP address or CIDR network")?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= max => prefix,
                _ => bail!("the prefix length must be within 0..={max}"),
            },
        };
        Ok(Self { addr, prefix })
    }
}

/// One GCRA step at `now` (milliseconds): the key's new TAT if the request may pass, else
/// the milliseconds to wait. `tat` is `None` for a key never seen or forgotten.
fn gcra(tat: Option<u64>, now: u64, rate: Rate) -> Result<u64, u64> {
    let emission = emission_ms(rate);
    let new_tat = tat.unwrap_or(now).max(now) + emission;
    let allow_at = new_tat.saturating_sub(emission * u64::from(rate.burst));
    if now < allow_at {
        Err(allow_at - now)
    } else {
        Ok(new_tat)
    }
}

/// The interval between two requests at the sustained rate; `per_minute` is at most 60000
/// (config), so it is at least one millisecond.
fn emission_ms(rate: Rate) -> u64 {
    60_000 / u64::from(rate.per_minute.max(1))
}

/// GCRA states in this process: right for one replica, and for tests.
pub(crate) struct MemoryStore {
    started: Instant,
    tats: Mutex<HashMap<String, u64>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            tats: Mutex::default(),
        }
    }
}

impl MemoryStore {
    fn check_at(&self, key: &str, rate: Rate, now: u64) -> Verdict {
        // A poisoned lock only means another request panicked mid-update of one number;
        // the map itself is still sound.
        let mut tats = self.tats.lock().unwrap_or_else(PoisonError::into_inner);
        if tats.len() >= MAX_MEMORY_KEYS && !tats.contains_key(key) {
            // A key whose TAT has passed is the same as an absent one.
            tats.retain(|_, tat| *tat > now);
            if tats.len() >= MAX_MEMORY_KEYS {
                return Verdict::Deny {
                    retry_after: Duration::from_millis(emission_ms(rate)),
                };
            }
        }
        match gcra(tats.get(key).copied(), now, rate) {
            Ok(tat) => {
                tats.insert(key.to_owned(), tat);
                Verdict::Allow
            }
            Err(wait) => Verdict::Deny {
                retry_after: Duration::from_millis(wait),
            },
        }
    }
}

impl Store for MemoryStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Verdict, StoreUnavailable>> {
        // Milliseconds since this store started; the +1 keeps 0 free for "never".
        let now = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX) + 1;
        Box::pin(std::future::ready(Ok(self.check_at(key, rate, now))))
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreUnavailable>> {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// GCRA states in Redis, shared by every replica that uses the same Redis database.
struct RedisStore {
    client: redis::Client,
    /// Connected on first use, inside the runtime, and then reconnected by the manager.
    connection: tokio::sync::OnceCell<ConnectionManager>,
    script: redis::Script,
}

impl RedisStore {
    fn new(url: &str) -> anyhow::Result<Self> {
        // Never name the URL in an error: it may hold a password.
        let client = redis::Client::open(url)
            .map_err(|_| anyhow::anyhow!("limits.redis_url is not a valid Redis URL"))?;
        Ok(Self {
            client,
            connection: tokio::sync::OnceCell::new(),
            script: redis::Script::new(GCRA_LUA),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreUnavailable> {
        let manager = self
            .connection
            .get_or_try_init(|| async {
                // Retries are left to the next request: a mint waits at most
                // REDIS_TIMEOUT, never for a reconnection backoff.
                let config = ConnectionManagerConfig::new()
                    .set_number_of_retries(1)
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT));
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|e| StoreUnavailable(format!("cannot set up the connection: {e}")))?;
        Ok(manager.clone())
    }

    /// Runs one Redis call with [`REDIS_TIMEOUT`] as the deadline.
    async fn bounded<T>(
        &self,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreUnavailable> {
        match tokio::time::timeout(REDIS_TIMEOUT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(StoreUnavailable(e.to_string())),
            Err(_) => Err(StoreUnavailable(format!(
                "no answer within {REDIS_TIMEOUT:?}"
            ))),
        }
    }
}

impl Store for RedisStore {
    fn check<'a>(
        &'a self,
        key: &'a str,
        rate: Rate,
    ) -> BoxFuture<'a, Result<Verdict, StoreUnavailable>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            let mut invocation = self.script.key(format!("{REDIS_PREFIX}{key}"));
            invocation.arg(emission_ms(rate)).arg(rate.burst);
            let wait: u64 = self
                .bounded(invocation.invoke_async(&mut connection))
                .await?;
            Ok(match wait {
                0 => Verdict::Allow,
                ms => Verdict::Deny {
                    retry_after: Duration::from_millis(ms),
                },
            })
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), StoreUnavailable>> {
        Box::pin(async move {
            let mut connection = self.connection().await?;
            self.bounded(redis::cmd("PING").query_async::<String>(&mut connection))
                .await
                .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_PER_MINUTE_BURST_2: Rate = Rate {
        per_minute: 5,
        burst: 2,
    };

    fn limits(trusted: &[&str]) -> Limits {
        let config = LimitsConfig {
            trusted_proxies: trusted.iter().map(|&p| p.to_owned()).collect(),
            ..LimitsConfig::default()
        };
        Limits::new(&config).expect("valid limits")
    }

    fn forwarded(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(X_FORWARDED_FOR, line.parse().expect("header value"));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn gcra_lets_a_burst_through_then_one_per_interval() {
        let rate = FIVE_PER_MINUTE_BURST_2;
        let store = MemoryStore::default();
        let at = |now| store.check_at("k", rate, now);
        assert_eq!(at(1_000), Verdict::Allow);
        assert_eq!(at(1_000), Verdict::Allow);
        // The interval is 12 s; the third request waits for one to drain.
        assert_eq!(
            at(1_000),
            Verdict::Deny {
                retry_after: Duration::from_secs(12)
            }
        );
        assert_eq!(
            at(7_000),
            Verdict::Deny {
                retry_after: Duration::from_secs(6)
            }
        );
        assert_eq!(at(13_000), Verdict::Allow);
        // Refusals did not count, and a long pause restores the whole burst, no more.
        assert_eq!(at(100_000), Verdict::Allow);
        assert_eq!(at(100_000), Verdict::Allow);
        assert!(matches!(at(100_000), Verdict::Deny { .. }));
        // Other keys are independent.
        assert_eq!(store.check_at("other", rate, 100_000), Verdict::Allow);
    }

    #[test]
    fn the_memory_store_forgets_expired_keys_and_refuses_to_grow_past_its_cap() {
        let rate = Rate {
            per_minute: 60_000,
            burst: 1,
        };
        let store = MemoryStore::default();
        for i in 0..MAX_MEMORY_KEYS {
            assert_eq!(store.check_at(&i.to_string(), rate, 1), Verdict::Allow);
        }
        // Full of live keys: a new key is refused rather than stored.
        assert!(matches!(
            store.check_at("new", rate, 1),
            Verdict::Deny { .. }
        ));
        // Once they have expired they are dropped and the new key fits.
        assert_eq!(store.check_at("new", rate, 10), Verdict::Allow);
        assert_eq!(
            store.tats.lock().expect("lock").len(),
            1,
            "expired keys are gone"
        );
    }

    #[test]
    fn untrusted_peers_are_the_client_whatever_they_forward() {
        let limits = limits(&[]);
        let spoofed = forwarded(&["203.0.113.9", "198.51.100.1, 10.0.0.1"]);
        assert_eq!(limits.client_ip(ip("192.0.2.7"), &spoofed), ip("192.0.2.7"));
        let limits = self::limits(&["10.0.0.0/8"]);
        assert_eq!(limits.client_ip(ip("192.0.2.7"), &spoofed), ip("192.0.2.7"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_is_the_client() {
        let limits = limits(&["10.0.0.0/8", "2001:db8::1"]);
        let peer = ip("10.1.2.3");
        // The client's own "X-Forwarded-For: 1.1.1.1" came first and is ignored.
        let headers = forwarded(&["1.1.1.1, 198.51.100.4", "10.0.0.5"]);
        assert_eq!(limits.client_ip(peer, &headers), ip("198.51.100.4"));
        assert_eq!(
            limits.client_ip(peer, &forwarded(&["198.51.100.4:5555"])),
            ip("198.51.100.4")
        );
        assert_eq!(
            limits.client_ip(peer, &forwarded(&["[2001:db8::7]:443"])),
            ip("2001:db8::7")
        );
        // Unreadable entries stop at the last trusted hop; no header: the proxy itself.
        assert_eq!(
            limits.client_ip(peer, &forwarded(&["198.51.100.4, unknown, 10.0.0.5"])),
            ip("10.0.0.5")
        );
        assert_eq!(limits.client_ip(peer, &HeaderMap::new()), peer);
        assert_eq!(
            limits.client_ip(ip("::ffff:10.0.0.9"), &forwarded(&["198.51.100.4"])),
            ip("198.51.100.4"),
            "an IPv4-mapped peer is the IPv4 address"
        );
        assert_eq!(
            limits.client_ip(ip("2001:db8::1"), &forwarded(&["2001:db8::2"])),
            ip("2001:db8::2")
        );
    }

    #[test]
    fn ipv6_clients_count_per_64_network() {
        assert_eq!(
            client_key(ip("2001:db8:1:2:aaaa::1")),
            client_key(ip("2001:db8:1:2:bbbb::2"))
        );
        assert_ne!(
            client_key(ip("2001:db8:1:2::1")),
            client_key(ip("2001:db8:1:3::1"))
        );
        assert_eq!(client_key(ip("::ffff:192.0.2.1")), "ip:192.0.2.1");
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().expect("cidr");
        assert!(net.contains(ip("10.255.0.1")) && !net.contains(ip("11.0.0.1")));
        assert!(net.contains(ip("::ffff:10.0.0.1")));
        let all: IpNet = "0.0.0.0/0".parse().expect("cidr");
        assert!(all.contains(ip("192.0.2.1")) && !all.contains(ip("::1")));
        let one: IpNet = "::1".parse().expect("address");
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "proxy.internal",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad} should be refused");
        }
    }
}
