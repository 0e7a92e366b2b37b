//! The BFF's configuration: plain data read from TOML, checked once at start.
//!
//! Every value a browser's request is compared with (origins above all) is validated here,
//! so that the request path can compare bytes exactly and never has to normalise.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The environment variable that overrides `upstream.client_secret`, so the secret can
/// come from a secret store instead of the config file.
pub(crate) const CLIENT_SECRET_ENV: &str = "SPEAKNODE_BFF_CLIENT_SECRET";

/// Bounds of `token_ttl_secs`: shorter tokens expire while a slow page still loads, longer
/// ones widen the window in which a stolen token is useful.
const TOKEN_TTL_RANGE: std::ops::RangeInclusive<u64> = 30..=600;

/// Everything the BFF needs to run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// This BFF's public base URL, e.g. `https://bff.shop.example`: the `iss` of widget
    /// tokens, whose `aud` is `{public_url}/v1`. `serve` fills it in from the bound address
    /// when it is `None`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Lifetime of a widget token in seconds, within 30..=600.
    #[serde(default = "default_token_ttl_secs")]
    pub token_ttl_secs: u64,
    /// The SpeakNode platform and the BFF's credentials for it.
    pub upstream: UpstreamConfig,
    /// The agents widgets may talk to, each with the pages allowed to embed it.
    #[serde(default)]
    pub agents: Vec<AgentPolicy>,
    /// A PKCS#8 PEM Ed25519 key that signs widget tokens. Without one an ephemeral key is
    /// generated at start, which replicas do not share and a restart forgets.
    #[serde(default)]
    pub signing_key_file: Option<PathBuf>,
    /// Keys that signed widget tokens before the current `signing_key_file` (PKCS#8 PEM,
    /// Ed25519). They only verify, and stay published in the JWKS: to rotate, move the old
    /// key here and set a new `signing_key_file`; drop it once `token_ttl_secs` has passed,
    /// when no token it signed can still be valid.
    #[serde(default)]
    pub previous_signing_key_files: Vec<PathBuf>,
    /// Rate limits on minting.
    #[serde(default)]
    pub limits: LimitsConfig,
}

/// Where the platform is and how the BFF authenticates to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// The Keycloak realm URL; discovery is at `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// The platform's REST API base URL (the part before `/api/v1`).
    pub api_base: String,
    /// The BFF's confidential client at the platform's identity provider.
    pub client_id: String,
    /// Its secret; [`CLIENT_SECRET_ENV`] overrides it in [`Config::load`].
    #[serde(default = "empty_secret")]
    pub client_secret: SecretString,
    /// Timeout of each call to the platform, in milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How the BFF obtains its platform access token.
    #[serde(default)]
    pub mode: UpstreamMode,
    /// Where `refresh_token` mode keeps its refresh token (written by `speaknode-bff
    /// login`, rewritten on every rotation). One BFF instance per file.
    #[serde(default)]
    pub refresh_token_file: Option<PathBuf>,
    /// An RFC 8707 resource indicator sent as `resource` on every grant request, for
    /// identity providers that issue audience-bound (e.g. JWT) access tokens per resource.
    #[serde(default)]
    pub resource: Option<String>,
    /// Sent as `audience` on every grant request, for identity providers that take that
    /// parameter instead of `resource`.
    #[serde(default)]
    pub audience: Option<String>,
    /// Space-separated scopes requested with `client_credentials` and by `login`.
    #[serde(default)]
    pub scope: Option<String>,
    /// The port of `login`'s redirect URI `http://127.0.0.1:{port}/callback`; a random
    /// free port when unset (for identity providers that ignore loopback ports, RFC 8252).
    #[serde(default)]
    pub login_redirect_port: Option<u16>,
    /// The longest a LiveKit join token from the platform may still be valid when the BFF
    /// passes it to a widget, in seconds (1..=3600); a token valid for longer is refused.
    #[serde(default = "default_max_voice_token_ttl_secs")]
    pub max_voice_token_ttl_secs: u64,
}

/// The grant the BFF uses for its own platform access token.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamMode {
    /// `client_credentials` with the BFF's own client: no refresh token to lose.
    #[default]
    ClientCredentials,
    /// A refresh token from one user authorisation (`speaknode-bff login`), rotated and
    /// stored in `refresh_token_file`.
    RefreshToken,
}

/// One agent and the pages that may embed a widget for it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentPolicy {
    /// The platform's agent id.
    pub id: String,
    /// Exact origins, as browsers send them: `https://shop.example`, `http://localhost:8080`.
    pub allowed_origins: Vec<String>,
}

/// Empty identity values, which [`Config::validate`] refuses, and every optional key at
/// its default: a base for literals in tests and tools.
impl Default for UpstreamConfig {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            api_base: String::new(),
            client_id: String::new(),
            client_secret: empty_secret(),
            timeout_ms: default_timeout_ms(),
            mode: UpstreamMode::default(),
            refresh_token_file: None,
            resource: None,
            audience: None,
            scope: None,
            login_redirect_port: None,
            max_voice_token_ttl_secs: default_max_voice_token_ttl_secs(),
        }
    }
}

/// Rate limits on minting (`POST /v1/sessions`), each a sustained rate with a burst.
///
/// A request counts against its client's limit first; the agent's and the global limit
/// count only requests that passed the origin and agent checks, just before the platform
/// is asked, so a page that may embed nothing cannot use up a real page's allowance.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Per client IP address; an IPv6 client counts per /64 network, since one host
    /// commonly owns the whole network.
    pub per_ip: Rate,
    /// Per agent, over all its visitors.
    pub per_agent: Rate,
    /// For the whole BFF; with `redis_url`, for all replicas together.
    pub global: Rate,
    /// Reverse proxies (IP addresses or CIDR networks, e.g. `10.0.0.0/8`) in front of the
    /// BFF. Only when the TCP peer is one of them is `X-Forwarded-For` read, and then the
    /// right-most address that is not a trusted proxy is the client. Empty: the TCP peer is
    /// the client and `X-Forwarded-For` is ignored, since anyone can send it.
    pub trusted_proxies: Vec<String>,
    /// `redis://[user:password@]host[:port][/db]`: count the limits in Redis, so every
    /// replica shares them. Without it each replica counts in its own memory.
    pub redis_url: Option<SecretString>,
}

/// A sustained rate and how many requests may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Requests per minute, sustained; within 1..=60000.
    pub per_minute: u32,
    /// Requests allowed at once before the rate applies; within 1..=10000.
    pub burst: u32,
}

impl Default for LimitsConfig {
    /// Generous for people, tight for scripts: a visitor mints once per conversation, and
    /// even a busy shop sees a handful of conversations per minute per agent.
    fn default() -> Self {
        Self {
            per_ip: Rate {
                per_minute: 10,
                burst: 5,
            },
            per_agent: Rate {
                per_minute: 120,
                burst: 30,
            },
            global: Rate {
                per_minute: 600,
                burst: 100,
            },
            trusted_proxies: Vec::new(),
            redis_url: None,
        }
    }
}

impl LimitsConfig {
    fn validate(&self) -> anyhow::Result<()> {
        for (name, rate) in [
            ("per_ip", self.per_ip),
            ("per_agent", self.per_agent),
            ("global", self.global),
        ] {
            ensure!(
                (1..=60_000).contains(&rate.per_minute) && (1..=10_000).contains(&rate.burst),
                "limits.{name} must have per_minute within 1..=60000 and burst within 1..=10000"
            );
        }
        for proxy in &self.trusted_proxies {
            proxy
                .parse::<crate::limits::IpNet>()
                .with_context(|| format!("limits.trusted_proxies: {proxy:?}"))?;
        }
        if let Some(url) = &self.redis_url {
            // The URL may hold a password, so no message repeats it.
            let url = url.expose_secret();
            ensure!(
                url.starts_with("redis://") || url.starts_with("unix://"),
                "limits.redis_url must be a redis:// or unix:// URL (TLS is not built in)"
            );
            ensure!(
                redis::Client::open(url).is_ok(),
                "limits.redis_url is not a valid Redis URL"
            );
        }
        Ok(())
    }
}

fn default_token_ttl_secs() -> u64 {
    300
}

/// Ten minutes: the join token only gates joining, so anything longer helps a thief only.
fn default_max_voice_token_ttl_secs() -> u64 {
    600
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn empty_secret() -> SecretString {
    SecretString::from("")
}

impl Config {
    /// Parses and validates a TOML document (no environment overrides).
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let config = parse(text)?;
        config.validate()?;
        Ok(config)
    }

    /// Reads the TOML file at `path`, applies [`CLIENT_SECRET_ENV`] and validates the result.
    pub fn load(path: &Path) -> anyhow::Result<Config> {
        load_with(path, std::env::var(CLIENT_SECRET_ENV).ok())
    }

    /// Checks every rule a value must follow; `router` calls it too, because tests and
    /// tools build `Config` as a literal.
    pub fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            TOKEN_TTL_RANGE.contains(&self.token_ttl_secs),
            "token_ttl_secs is {}, but must be within {}..={} seconds",
            self.token_ttl_secs,
            TOKEN_TTL_RANGE.start(),
            TOKEN_TTL_RANGE.end()
        );
        if let Some(url) = &self.public_url {
            validate_base_url(url).context("public_url")?;
        }
        let upstream = &self.upstream;
        validate_base_url(&upstream.issuer).context("upstream.issuer")?;
        validate_base_url(&upstream.api_base).context("upstream.api_base")?;
        ensure!(
            !upstream.client_id.trim().is_empty(),
            "upstream.client_id is empty"
        );
        // A refresh token may belong to a public client; client credentials need a secret.
        ensure!(
            upstream.mode == UpstreamMode::RefreshToken
                || !upstream.client_secret.expose_secret().is_empty(),
            "upstream.client_secret is empty (set it in the file or in {CLIENT_SECRET_ENV})"
        );
        ensure!(
            upstream.mode == UpstreamMode::ClientCredentials
                || upstream.refresh_token_file.is_some(),
            "upstream.mode = \"refresh_token\" needs upstream.refresh_token_file"
        );
        if let Some(resource) = &upstream.resource {
            // RFC 8707 §2: an absolute URI without a fragment.
            let valid = reqwest::Url::parse(resource).is_ok_and(|url| url.fragment().is_none());
            ensure!(
                valid,
                "upstream.resource {resource:?} must be an absolute URI without a fragment"
            );
        }
        ensure!(
            (100..=120_000).contains(&upstream.timeout_ms),
            "upstream.timeout_ms is {}, but must be within 100..=120000",
            upstream.timeout_ms
        );
        ensure!(
            (1..=3600).contains(&upstream.max_voice_token_ttl_secs),
            "upstream.max_voice_token_ttl_secs is {}, but must be within 1..=3600",
            upstream.max_voice_token_ttl_secs
        );
        let mut seen = std::collections::HashSet::new();
        for agent in &self.agents {
            validate_agent_id(&agent.id)?;
            ensure!(
                seen.insert(agent.id.as_str()),
                "agent {:?} is configured twice",
                agent.id
            );
            for origin in &agent.allowed_origins {
                validate_origin(origin)
                    .with_context(|| format!("agent {:?}: allowed origin {origin:?}", agent.id))?;
            }
        }
        self.limits.validate()
    }

    /// The public base URL without a trailing slash, once it is known.
    pub(crate) fn public_base(&self) -> Option<&str> {
        self.public_url
            .as_deref()
            .map(|url| url.trim_end_matches('/'))
    }
}

/// [`Config::load`] with the environment's secret passed in, so tests need not change the
/// process environment.
fn load_with(path: &Path, secret_from_env: Option<String>) -> anyhow::Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    let mut config =
        parse(&text).with_context(|| format!("in the config file {}", path.display()))?;
    if let Some(secret) = secret_from_env {
        config.upstream.client_secret = SecretString::from(secret);
    }
    config.validate()?;
    Ok(config)
}

fn parse(text: &str) -> anyhow::Result<Config> {
    toml::from_str(text).context("invalid BFF configuration")
}

/// Agent ids become a path segment of platform URLs, so only URL-safe characters pass.
fn validate_agent_id(id: &str) -> anyhow::Result<()> {
    ensure!(
        !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "agent id {id:?} must be 1 to 128 characters of A-Z, a-z, 0-9, '-' or '_'"
    );
    Ok(())
}

/// An `http(s)://` URL that may carry a path but no query, fragment or user info.
fn validate_base_url(url: &str) -> anyhow::Result<()> {
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{url:?} is not an absolute URL");
    };
    ensure!(
        matches!(scheme, "http" | "https"),
        "{url:?} must use http or https"
    );
    let authority = rest.split('/').next().unwrap_or_default();
    ensure!(!authority.is_empty(), "{url:?} has no host");
    ensure!(
        !url.contains(['?', '#', '@', ' ']),
        "{url:?} must not contain a query, fragment, user info or spaces"
    );
    Ok(())
}

/// Checks that `origin` is written exactly as a browser serialises an `Origin` header, since
/// requests are matched byte for byte: a lowercase `http(s)://host[:port]` with no path,
/// wildcard, trailing dot or default port.
pub(crate) fn validate_origin(origin: &str) -> anyhow::Result<()> {
    let Some((scheme, authority)) = origin.split_once("://") else {
        bail!("must look like https://host[:port]");
    };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => bail!("the scheme must be http or https"),
    };
    ensure!(
        origin
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b.is_ascii_uppercase()),
        "must be lowercase ASCII without spaces (browsers send international names as punycode)"
    );
    ensure!(
        !origin.contains('*'),
        "wildcards are not supported; list every origin"
    );
    ensure!(
        !authority.contains(['/', '?', '#', '@', '\\']),
        "must not have a path, query, fragment or user info"
    );
    // An IPv6 literal keeps its colons inside brackets, so the port is what follows `]:`.
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (authority, None),
    };
    ensure!(!host.is_empty(), "has no host");
    ensure!(!host.ends_with('.'), "must not end with a dot");
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        host.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    ensure!(host_ok, "has an invalid host");
    if let Some(port) = port {
        ensure!(
            port.parse::<u16>().is_ok_and(|p| p > 0) && !port.starts_with('0'),
            "has an invalid port"
        );
        ensure!(
            port != default_port,
            "browsers omit the default port {default_port}; drop it"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [upstream]
        issuer = "http://127.0.0.1:8780/realms/speaknode"
        api_base = "http://127.0.0.1:8780"
        client_id = "speaknode-bff-demo"
        client_secret = "s3cret"

        [[agents]]
        id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        allowed_origins = ["https://shop.example", "http://localhost:8080"]
    "#;

    #[test]
    fn a_minimal_file_gets_the_defaults() {
        let config = Config::from_toml(MINIMAL).expect("the minimal config is valid");
        assert_eq!(config.token_ttl_secs, 300);
        assert_eq!(config.upstream.timeout_ms, 10_000);
        assert_eq!(config.public_url, None);
        assert_eq!(config.signing_key_file, None);
        assert_eq!(config.upstream.client_secret.expose_secret(), "s3cret");
        assert_eq!(config.agents[0].allowed_origins.len(), 2);
    }

    #[test]
    fn the_secret_never_shows_in_debug_output() {
        let config = Config::from_toml(MINIMAL).expect("the minimal config is valid");
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn token_ttl_outside_its_bounds_is_refused_with_a_clear_error() {
        for ttl in [0, 29, 601, 86_400] {
            let text = format!("token_ttl_secs = {ttl}\n{MINIMAL}");
            let error = Config::from_toml(&text).expect_err("the ttl is out of bounds");
            assert!(error.to_string().contains("token_ttl_secs"), "{error}");
        }
        for ttl in [30, 600] {
            let text = format!("token_ttl_secs = {ttl}\n{MINIMAL}");
            Config::from_toml(&text).expect("the bounds themselves are allowed");
        }
    }

    #[test]
    fn a_missing_secret_is_refused_unless_the_environment_supplies_it() {
        let text = MINIMAL.replace("client_secret = \"s3cret\"", "");
        let error = Config::from_toml(&text).expect_err("no secret anywhere");
        assert!(
            format!("{error:#}").contains(CLIENT_SECRET_ENV),
            "{error:#}"
        );
    }

    #[test]
    fn the_environment_supplies_or_overrides_the_secret() {
        let path = std::env::temp_dir().join(format!("bff-config-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, MINIMAL.replace("client_secret = \"s3cret\"", "")).expect("write");
        let error = load_with(&path, None).expect_err("no secret anywhere");
        assert!(
            format!("{error:#}").contains(CLIENT_SECRET_ENV),
            "{error:#}"
        );
        let config = load_with(&path, Some("from-env".into())).expect("the env has it");
        assert_eq!(config.upstream.client_secret.expose_secret(), "from-env");
        std::fs::write(&path, MINIMAL).expect("write");
        let config = load_with(&path, Some("from-env".into())).expect("env wins");
        assert_eq!(config.upstream.client_secret.expose_secret(), "from-env");
        let _ = std::fs::remove_file(&path);
        let error = load_with(&path, None).expect_err("the file is gone");
        assert!(
            format!("{error:#}").contains("cannot read the config file"),
            "{error:#}"
        );
    }

    #[test]
    fn refresh_token_mode_needs_a_file_but_no_client_secret() {
        let public = MINIMAL.replace("client_secret = \"s3cret\"", "mode = \"refresh_token\"");
        let error = Config::from_toml(&public).expect_err("no file");
        assert!(
            format!("{error:#}").contains("refresh_token_file"),
            "{error:#}"
        );
        let public = public.replace(
            "mode = ",
            "refresh_token_file = \"/var/lib/speaknode-bff/refresh-token.json\"\nmode = ",
        );
        let config = Config::from_toml(&public).expect("a public client may refresh");
        assert_eq!(config.upstream.mode, UpstreamMode::RefreshToken);
        let default = Config::from_toml(MINIMAL).expect("valid");
        assert_eq!(default.upstream.mode, UpstreamMode::ClientCredentials);
        let unknown = MINIMAL.replace("client_id =", "mode = \"password\"\nclient_id =");
        assert!(Config::from_toml(&unknown).is_err());
    }

    #[test]
    fn a_resource_indicator_is_an_absolute_uri_without_a_fragment() {
        for (resource, valid) in [
            ("https://voice-api.example", true),
            ("urn:speaknode:platform-api", true),
            ("voice-api", false),
            ("https://voice-api.example/#v1", false),
        ] {
            let text = MINIMAL.replace(
                "client_id =",
                &format!("resource = \"{resource}\"\nclient_id ="),
            );
            assert_eq!(Config::from_toml(&text).is_ok(), valid, "{resource}");
        }
    }

    #[test]
    fn limits_have_defaults_and_a_section_overrides_them() {
        let config = Config::from_toml(MINIMAL).expect("valid");
        let limits = &config.limits;
        let rate = |per_minute, burst| Rate { per_minute, burst };
        assert_eq!(
            (limits.per_ip, limits.per_agent, limits.global),
            (rate(10, 5), rate(120, 30), rate(600, 100))
        );
        assert!(limits.trusted_proxies.is_empty() && limits.redis_url.is_none());

        let text = format!(
            "{MINIMAL}\n[limits]\nper_ip = {{ per_minute = 30, burst = 10 }}\n\
             trusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n\
             redis_url = \"redis://:hunter2@127.0.0.1:6379/2\"\n"
        );
        let config = Config::from_toml(&text).expect("valid");
        assert_eq!(config.limits.per_ip, rate(30, 10));
        assert_eq!(
            config.limits.per_agent,
            rate(120, 30),
            "the rest keep defaults"
        );
        assert_eq!(config.limits.trusted_proxies.len(), 2);
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn invalid_limits_are_refused_without_echoing_the_redis_password() {
        for limits in [
            "per_ip = { per_minute = 0, burst = 5 }",
            "per_agent = { per_minute = 60001, burst = 5 }",
            "global = { per_minute = 10, burst = 0 }",
            "per_ip = { per_minute = 10 }",
            "trusted_proxies = [\"10.0.0.0/33\"]",
            "trusted_proxies = [\"proxy.internal\"]",
            "redis_url = \"rediss://:hunter2@cache.internal\"",
            "redis_url = \"http://:hunter2@cache.internal\"",
            "redis_url = \"redis://:hunter2@[::1\"",
        ] {
            let text = format!("{MINIMAL}\n[limits]\n{limits}\n");
            let error = Config::from_toml(&text).expect_err(limits);
            assert!(!format!("{error:#}").contains("hunter2"), "{error:#}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_so_typos_do_not_go_unnoticed() {
        let text = format!("token_tll_secs = 60\n{MINIMAL}");
        assert!(Config::from_toml(&text).is_err());
    }

    #[test]
    fn duplicate_agents_and_unsafe_agent_ids_are_refused() {
        let twice = format!(
            "{MINIMAL}\n[[agents]]\nid = \"7c9e6679-7425-40de-944b-e07fc1f90ae7\"\nallowed_origins = []"
        );
        assert!(Config::from_toml(&twice).is_err());
        let traversal = MINIMAL.replace("7c9e6679-7425-40de-944b-e07fc1f90ae7", "../admin");
        assert!(Config::from_toml(&traversal).is_err());
    }

    #[test]
    fn origins_are_written_as_browsers_send_them() {
        for good in [
            "https://shop.example",
            "http://localhost:8080",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
            "https://xn--bcher-kva.example",
        ] {
            validate_origin(good).unwrap_or_else(|e| panic!("{good} should pass: {e}"));
        }
        for bad in [
            "shop.example",
            "null",
            "*",
            "https://*.shop.example",
            "https://Shop.example",
            "HTTPS://shop.example",
            "https://shop.example/",
            "https://shop.example/widget",
            "https://shop.example.",
            "https://shop.example:443",
            "http://shop.example:80",
            "https://shop.example:0",
            "https://shop.example:65536",
            "https://shop.example:08080",
            "https://user@shop.example",
            "https://shop.example?x=1",
            "ftp://shop.example",
            "https://",
            "https://bücher.example",
            "https://[::1",
        ] {
            assert!(validate_origin(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn base_urls_must_be_http_without_query() {
        validate_base_url("https://bff.example/widget").expect("a path is fine");
        for bad in [
            "bff.example",
            "ftp://bff.example",
            "https://",
            "https://a.example/?x",
        ] {
            assert!(validate_base_url(bad).is_err(), "{bad} should be refused");
        }
    }
}
