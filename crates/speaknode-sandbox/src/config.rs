//! The sandbox's configuration: plain data, read from TOML or written as a literal in tests.

use anyhow::{Context as _, bail, ensure};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use uuid::{Uuid, uuid};

/// Everything a sandbox instance serves: its realm, its clients and its agents.
///
/// Every member has a default, so a test can write `Config { clients, agents, ..Default::default() }`
/// and a TOML file only what differs.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `scheme://host:port` the issuer is built from; `None` means `http://{listener address}`.
    pub public_url: Option<String>,
    /// The Keycloak realm name, the last segment of the issuer (default `speaknode`).
    pub realm: String,
    /// Lifetime of an access token, `expires_in` (default 300, Keycloak's).
    pub access_token_ttl_secs: u64,
    /// Confidential clients with a service account (`client_credentials`).
    pub clients: Vec<ClientConfig>,
    /// The agents of all spaces.
    pub agents: Vec<AgentConfig>,
    /// How fast the scripted agent moves a conversation along.
    pub timing: Timing,
    /// The timers of the SignalR hub at `/hubs/notifications`.
    pub hub: HubConfig,
    /// Webhook subscriptions: where the sandbox POSTs `SessionStarted` and
    /// `ConversationComplete`.
    pub webhooks: Vec<WebhookConfig>,
    /// How webhook deliveries are timed out and retried.
    pub webhook_delivery: WebhookDelivery,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            realm: "speaknode".to_owned(),
            access_token_ttl_secs: 300,
            clients: Vec::new(),
            agents: Vec::new(),
            timing: Timing::default(),
            hub: HubConfig::default(),
            webhooks: Vec::new(),
            webhook_delivery: WebhookDelivery::default(),
        }
    }
}

/// A confidential client whose service account acts in one space.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    pub client_secret: SecretString,
    /// Becomes the `space_id` claim of this client's tokens (a protocol mapper in Keycloak).
    pub space_id: Uuid,
}

/// An agent, as `GET /api/v1/agents/{id}` shows it, plus what the scripted agent says.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    pub id: Uuid,
    pub title: String,
    pub space_id: Uuid,
    /// The first thing the agent says once it has joined the room.
    pub greeting: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_language_locale_code")]
    pub language_locale_code: String,
}

/// Delays of the scripted agent's lifecycle steps, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Timing {
    /// `Pending` → `Dispatching`: the LiveKit room is created.
    pub dispatch_ms: u64,
    /// `Dispatching` → `Active`: the agent joins the room and greets.
    pub join_ms: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            dispatch_ms: 300,
            join_ms: 700,
        }
    }
}

/// The SignalR hub's timers, in milliseconds; the defaults are ASP.NET Core's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubConfig {
    /// A connection that has been sent nothing for this long gets a ping (`KeepAliveInterval`,
    /// 15 000).
    pub keep_alive_interval_ms: u64,
    /// A client that has sent nothing for this long is disconnected (`ClientTimeoutInterval`,
    /// 30 000).
    pub client_timeout_ms: u64,
    /// How long a client has for its handshake once connected (`HandshakeTimeout`, 15 000).
    pub handshake_timeout_ms: u64,
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            keep_alive_interval_ms: 15_000,
            client_timeout_ms: 30_000,
            handshake_timeout_ms: 15_000,
        }
    }
}

/// One webhook subscription of a space.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where the events are POSTed (`http://` or `https://`).
    pub url: String,
    /// Keys the HMAC-SHA256 signature of every body.
    pub secret: SecretString,
    /// The event types this subscription receives.
    pub events: Vec<WebhookEvent>,
    /// Only conversations of this space are reported.
    pub space_id: Uuid,
}

/// The platform's webhook event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum WebhookEvent {
    /// A conversation became `Active`: the agent has joined.
    SessionStarted,
    /// A conversation ended, `Completed` or `Failed`.
    ConversationComplete,
}

/// Timing of webhook deliveries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookDelivery {
    /// Attempts per delivery, the first one included (default 5).
    pub max_attempts: u32,
    /// Milliseconds before the second attempt; each later wait is twice the one before
    /// (default 1 000, so 1, 2, 4 and 8 s).
    pub retry_base_delay_ms: u64,
    /// Milliseconds one attempt may take, response included (default 10 000).
    pub attempt_timeout_ms: u64,
}

impl Default for WebhookDelivery {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            retry_base_delay_ms: 1_000,
            attempt_timeout_ms: 10_000,
        }
    }
}

fn default_language_locale_code() -> String {
    "en-US".to_owned()
}

impl Config {
    /// Parses and checks a TOML configuration file's text.
    pub fn from_toml(text: &str) -> anyhow::Result<Config> {
        let config: Config = toml::from_str(text).context("invalid sandbox configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// The set-up the binary runs without `--config`: one client, one space, two agents.
    ///
    /// The ids of the space and of Ava are those of the contract's fixtures, so examples
    /// written against the fixtures work against the demo as they are.
    pub fn demo(client_secret: SecretString) -> Config {
        let space_id = uuid!("0f8fad5b-d9cb-469f-a165-70867728950e");
        Config {
            clients: vec![ClientConfig {
                client_id: "speaknode-bff-demo".to_owned(),
                client_secret,
                space_id,
            }],
            agents: vec![
                AgentConfig {
                    id: uuid!("7c9e6679-7425-40de-944b-e07fc1f90ae7"),
                    title: "Ava".to_owned(),
                    space_id,
                    greeting: "Hi! I'm Ava. How can I help you today?".to_owned(),
                    description: "Front desk agent of the demo store".to_owned(),
                    language_locale_code: default_language_locale_code(),
                },
                AgentConfig {
                    id: uuid!("3d5f1b2a-8c4e-4f6a-9b7d-1e2c3a4b5c6d"),
                    title: "Max".to_owned(),
                    space_id,
                    greeting: "Hello, this is Max from support. What can I do for you?".to_owned(),
                    description: "Support agent of the demo store".to_owned(),
                    language_locale_code: default_language_locale_code(),
                },
            ],
            ..Config::default()
        }
    }

    /// Rejects what would otherwise fail later and less clearly: the realm becomes a route
    /// segment, and ids must be unique for look-ups to be unambiguous.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            !self.realm.is_empty()
                && self
                    .realm
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "realm {:?} must be non-empty ASCII letters, digits, '-' or '_'",
            self.realm
        );
        if let Some(url) = &self.public_url {
            ensure!(
                url.starts_with("http://") || url.starts_with("https://"),
                "public_url {url:?} must start with http:// or https://"
            );
        }
        for (i, client) in self.clients.iter().enumerate() {
            ensure!(!client.client_id.is_empty(), "a client_id is empty");
            if self.clients[..i]
                .iter()
                .any(|c| c.client_id == client.client_id)
            {
                bail!("client_id {:?} appears twice", client.client_id);
            }
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|a| a.id == agent.id) {
                bail!("agent id {} appears twice", agent.id);
            }
        }
        self.validate_events()
    }

    /// Timers of zero would spin and timers beyond a day are surely mistakes (and would
    /// overflow instants); a subscription must say where and what to deliver.
    fn validate_events(&self) -> anyhow::Result<()> {
        const DAY_MS: u64 = 24 * 60 * 60 * 1000;
        let hub = &self.hub;
        for (name, ms) in [
            ("hub.keep_alive_interval_ms", hub.keep_alive_interval_ms),
            ("hub.client_timeout_ms", hub.client_timeout_ms),
            ("hub.handshake_timeout_ms", hub.handshake_timeout_ms),
            (
                "webhook_delivery.attempt_timeout_ms",
                self.webhook_delivery.attempt_timeout_ms,
            ),
        ] {
            ensure!(
                (1..=DAY_MS).contains(&ms),
                "{name} must be from 1 to {DAY_MS}"
            );
        }
        ensure!(
            self.webhook_delivery.retry_base_delay_ms <= DAY_MS,
            "webhook_delivery.retry_base_delay_ms must be at most {DAY_MS}"
        );
        ensure!(
            self.webhook_delivery.max_attempts > 0,
            "webhook_delivery.max_attempts must be at least 1"
        );
        for webhook in &self.webhooks {
            let url = reqwest::Url::parse(&webhook.url)
                .with_context(|| format!("webhook url {:?} is not a URL", webhook.url))?;
            ensure!(
                matches!(url.scheme(), "http" | "https"),
                "webhook url {:?} must be http:// or https://",
                webhook.url
            );
            ensure!(
                !webhook.events.is_empty(),
                "the webhook to {:?} subscribes to no events",
                webhook.url
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret as _;

    #[test]
    fn minimal_toml_gets_defaults() -> anyhow::Result<()> {
        let config = Config::from_toml(
            r#"
            [[clients]]
            client_id = "bff"
            client_secret = "s3cret"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"

            [[agents]]
            id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
            title = "Ava"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            greeting = "Hi!"
            "#,
        )?;
        assert_eq!(config.realm, "speaknode");
        assert_eq!(config.access_token_ttl_secs, 300);
        assert_eq!(config.clients[0].client_secret.expose_secret(), "s3cret");
        assert_eq!(config.agents[0].language_locale_code, "en-US");
        assert_eq!(config.agents[0].description, "");
        assert_eq!(
            (config.timing.dispatch_ms, config.timing.join_ms),
            (300, 700)
        );
        Ok(())
    }

    #[test]
    fn rejects_a_realm_that_cannot_be_a_path_segment() {
        assert!(Config::from_toml(r#"realm = "a/b""#).is_err());
        assert!(Config::from_toml(r#"realm = "{x}""#).is_err());
    }

    #[test]
    fn rejects_duplicate_client_ids() {
        let text = r#"
            [[clients]]
            client_id = "bff"
            client_secret = "a"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            [[clients]]
            client_id = "bff"
            client_secret = "b"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
        "#;
        assert!(Config::from_toml(text).is_err());
    }

    #[test]
    fn hub_timers_from_toml_and_their_bounds() -> anyhow::Result<()> {
        let config = Config::from_toml("hub = { keep_alive_interval_ms = 100 }")?;
        assert_eq!(config.hub.keep_alive_interval_ms, 100);
        assert_eq!(config.hub.client_timeout_ms, 30_000);
        assert!(Config::from_toml("hub = { keep_alive_interval_ms = 0 }").is_err());
        assert!(Config::from_toml("hub = { client_timeout_ms = 18446744073709551615 }").is_err());
        Ok(())
    }

    #[test]
    fn webhooks_from_toml() -> anyhow::Result<()> {
        let config = Config::from_toml(
            r#"
            webhook_delivery = { retry_base_delay_ms = 10 }

            [[webhooks]]
            url = "https://hooks.example/speaknode"
            secret = "whsec"
            events = ["SessionStarted", "ConversationComplete"]
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            "#,
        )?;
        assert_eq!(config.webhook_delivery.max_attempts, 5);
        assert_eq!(config.webhook_delivery.retry_base_delay_ms, 10);
        assert_eq!(config.webhooks[0].secret.expose_secret(), "whsec");
        assert_eq!(
            config.webhooks[0].events,
            [
                WebhookEvent::SessionStarted,
                WebhookEvent::ConversationComplete
            ]
        );
        Ok(())
    }

    #[test]
    fn rejects_unusable_webhooks() {
        let webhook = |url: &str, events: &str| {
            format!(
                "[[webhooks]]\nurl = {url:?}\nsecret = \"s\"\nevents = {events}\n\
                 space_id = \"0f8fad5b-d9cb-469f-a165-70867728950e\"\n"
            )
        };
        let started = r#"["SessionStarted"]"#;
        assert!(Config::from_toml(&webhook("http://127.0.0.1:9/hook", started)).is_ok());
        assert!(Config::from_toml(&webhook("ftp://example/hook", started)).is_err());
        assert!(Config::from_toml(&webhook("not a url", started)).is_err());
        assert!(Config::from_toml(&webhook("http://example/hook", "[]")).is_err());
        assert!(Config::from_toml(&webhook("http://example/hook", r#"["CallEnded"]"#)).is_err());
        assert!(Config::from_toml("webhook_delivery = { max_attempts = 0 }").is_err());
        assert!(Config::from_toml("webhook_delivery = { attempt_timeout_ms = 0 }").is_err());
    }

    #[test]
    fn demo_config_is_valid() {
        assert!(Config::demo(SecretString::from("x")).validate().is_ok());
    }
}
