//! The sandbox's configuration: plain data, read from TOML or written as a literal in tests.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use anyhow::{Context as _, bail, ensure};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use uuid::{Uuid, uuid};

use crate::{
    catalog::{self, PhoneNumberConfig, ToolConfig, ToolType},
    ratelimit::RateLimit,
    scenario::{self, Reply, Scenario},
};

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
    /// How long a login session lives without a refresh, `refresh_expires_in` (default 1800,
    /// Keycloak's "SSO Session Idle"). Every refresh starts the period again.
    pub refresh_token_ttl_secs: u64,
    /// Seconds after which a new signing key replaces the current one; `None` (the default)
    /// never rotates by itself. Older keys stay published until their tokens have expired.
    pub key_rotation_secs: Option<u64>,
    /// The realm's clients: confidential ones (with a secret and a service account) and
    /// public ones (no secret, authorization code with PKCE only).
    pub clients: Vec<ClientConfig>,
    /// The users who can sign in on the login form.
    pub users: Vec<UserConfig>,
    /// The agents of all spaces.
    pub agents: Vec<AgentConfig>,
    /// How fast the scripted agent moves a conversation along.
    pub timing: Timing,
    /// The tools of all spaces (`GET /api/v1/tools`).
    pub tools: Vec<ToolConfig>,
    /// The imported phone numbers of all spaces (`GET /api/v1/phone-numbers`).
    pub phone_numbers: Vec<PhoneNumberConfig>,
    /// What the scripted agents say and do; an agent without one only greets.
    pub scenarios: Vec<Scenario>,
    /// A TOML file of more `[[scenarios]]`, relative to the working directory.
    pub scenario_file: Option<PathBuf>,
    /// API requests per caller and window (default 600 per 60 s).
    pub rate_limit: RateLimit,
    /// Mounts the unauthenticated admin routes under `/__sandbox` (default off).
    pub admin_enabled: bool,
    /// The timers of the SignalR hub at `/hubs/notifications`.
    pub hub: HubConfig,
    /// Webhook subscriptions: where the sandbox POSTs `SessionStarted` and
    /// `ConversationComplete`.
    pub webhooks: Vec<WebhookConfig>,
    /// How webhook deliveries are timed out and retried.
    pub webhook_delivery: WebhookDelivery,
    /// The LiveKit stand-in: where widgets join and how their join tokens are signed.
    pub livekit: LiveKitConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            public_url: None,
            realm: "speaknode".to_owned(),
            access_token_ttl_secs: 300,
            refresh_token_ttl_secs: 1800,
            key_rotation_secs: None,
            clients: Vec::new(),
            users: Vec::new(),
            agents: Vec::new(),
            timing: Timing::default(),
            tools: Vec::new(),
            phone_numbers: Vec::new(),
            scenarios: Vec::new(),
            scenario_file: None,
            rate_limit: RateLimit::default(),
            admin_enabled: false,
            hub: HubConfig::default(),
            webhooks: Vec::new(),
            webhook_delivery: WebhookDelivery::default(),
            livekit: LiveKitConfig::default(),
        }
    }
}

/// A client of the realm: confidential when it has a secret, public when it has none.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// The secret a confidential client authenticates with at the token endpoint. `None`
    /// makes a public client (Keycloak's "Client authentication: Off"), which cannot keep a
    /// secret and so may not use `client_credentials`.
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Becomes the `space_id` claim of the service account's tokens (a protocol mapper in
    /// Keycloak). Required for confidential clients; public clients have no service account.
    #[serde(default)]
    pub space_id: Uuid,
    /// Where the authorization endpoint may send a code, compared exactly (no wildcards).
    /// A client without any cannot use the authorization code flow.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
}

/// A user who signs in on the login form; tokens of their logins act in their space.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The `sub` of the user's tokens. Random at start-up when absent, as Keycloak gives a
    /// new user a random id.
    #[serde(default = "Uuid::new_v4")]
    pub id: Uuid,
    /// Matched without regard to case, since Keycloak stores usernames in lower case.
    pub username: String,
    pub password: SecretString,
    /// Becomes the `space_id` claim of the user's tokens.
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

/// The demo's public client, for trying the authorization code flow by hand.
pub const DEMO_PUBLIC_CLIENT: &str = "speaknode-demo-app";

/// Where the demo's public client may receive codes: loopback addresses, where nothing need
/// listen, because the code can be read off the browser's address bar.
pub const DEMO_REDIRECT_URIS: [&str; 2] = [
    "http://127.0.0.1:8000/callback",
    "http://localhost:8000/callback",
];

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

/// The LiveKit stand-in, served on the sandbox's own listener at `/rtc`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveKitConfig {
    /// The server URL web conversations name in `live_kit_url`; `None` (the default) means
    /// the sandbox's own address as a WebSocket URL: `ws://{listen address}`, or
    /// `public_url` with `http` turned into `ws` and `https` into `wss`.
    pub url: Option<String>,
    /// The API key join tokens are signed for, their `iss` (default `devkey`, LiveKit's
    /// `--dev` key).
    pub api_key: String,
    /// The API secret that signs join tokens (HS256). `None` (the default) makes a random
    /// one at every start, which the binary prints.
    pub api_secret: Option<SecretString>,
    /// How long a join token is valid, in seconds (default 300).
    pub token_ttl_secs: u64,
}

impl Default for LiveKitConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_key: "devkey".to_owned(),
            api_secret: None,
            token_ttl_secs: 300,
        }
    }
}

impl LiveKitConfig {
    /// The URL widgets join at, for a sandbox reachable at `base_url` (`http(s)://host:port`).
    pub fn url_for(&self, base_url: &str) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => {
                let base = base_url.trim_end_matches('/');
                match base.split_once("://") {
                    Some(("https", rest)) => format!("wss://{rest}"),
                    Some((_, rest)) => format!("ws://{rest}"),
                    None => format!("ws://{base}"),
                }
            }
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        if let Some(url) = &self.url {
            let parsed = reqwest::Url::parse(url)
                .with_context(|| format!("livekit.url {url:?} is not a URL"))?;
            ensure!(
                matches!(parsed.scheme(), "ws" | "wss") && parsed.host_str().is_some(),
                "livekit.url {url:?} must be a ws:// or wss:// URL"
            );
        }
        ensure!(!self.api_key.is_empty(), "livekit.api_key is empty");
        ensure!(
            self.api_secret
                .as_ref()
                .is_none_or(|secret| !secret.expose_secret().is_empty()),
            "livekit.api_secret is empty; leave it out for a random one"
        );
        ensure!(
            (1..=86_400).contains(&self.token_ttl_secs),
            "livekit.token_ttl_secs must be from 1 to 86400"
        );
        Ok(())
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

    /// The set-up the binary runs without `--config`: one space with a confidential client
    /// for a BFF, a public client for trying the login flow, a user and two agents.
    ///
    /// The ids of the space and of Ava are those of the contract's fixtures, so examples
    /// written against the fixtures work against the demo as they are.
    pub fn demo(client_secret: SecretString) -> Config {
        let space_id = uuid!("0f8fad5b-d9cb-469f-a165-70867728950e");
        let ava = uuid!("7c9e6679-7425-40de-944b-e07fc1f90ae7");
        let max = uuid!("3d5f1b2a-8c4e-4f6a-9b7d-1e2c3a4b5c6d");
        let system = |code: &str, name: &str, description: &str| ToolConfig {
            id: None,
            space_id,
            kind: ToolType::System,
            code: code.to_owned(),
            name: Some(name.to_owned()),
            description: description.to_owned(),
            method: None,
            url: None,
        };
        Config {
            tools: vec![
                ToolConfig {
                    id: None,
                    space_id,
                    kind: ToolType::Webhook,
                    code: "check_order_status".to_owned(),
                    name: Some("Check order status".to_owned()),
                    description: "Looks up an order of the demo store by its number.".to_owned(),
                    method: Some("GET".to_owned()),
                    url: Some("https://shop.example.com/api/orders/{{ order_id }}".to_owned()),
                },
                system(
                    "end_call",
                    "End call",
                    "Ends the call when the caller is done.",
                ),
                system(
                    "transfer",
                    "Transfer",
                    "Transfers the call to a human or another agent.",
                ),
            ],
            phone_numbers: vec![PhoneNumberConfig {
                id: None,
                space_id,
                number: "+4930123456789".to_owned(),
                friendly_name: "Demo store front desk".to_owned(),
                telecom_provider: "Twilio".to_owned(),
                agent_id: Some(ava),
            }],
            scenarios: vec![
                Scenario {
                    replies: vec![
                        Reply {
                            pattern: "order".to_owned(),
                            reply: Some(
                                "Your order A-1001 has shipped and arrives tomorrow.".to_owned(),
                            ),
                            end_call: false,
                            error_message: None,
                        },
                        Reply {
                            pattern: "bye".to_owned(),
                            reply: Some("Thanks for calling. Goodbye!".to_owned()),
                            end_call: true,
                            error_message: None,
                        },
                    ],
                    default_reply: Some(
                        "I can help with orders. What's your order number?".to_owned(),
                    ),
                    ..Scenario::greeting_only(ava)
                },
                Scenario {
                    // Max listens in calls: what the visitor says, in order, as the sandbox
                    // cannot recognise words.
                    hears: vec![
                        "Do you have the blue jacket in medium?".to_owned(),
                        "Thanks, that's all. Bye!".to_owned(),
                    ],
                    replies: vec![
                    Reply {
                        pattern: "jacket".to_owned(),
                        reply: Some(
                            "Yes, the blue jacket is in stock in medium. Shall I hold one for you?"
                                .to_owned(),
                        ),
                        end_call: false,
                        error_message: None,
                    },
                    Reply {
                        pattern: "bye".to_owned(),
                        reply: Some("You're welcome. Goodbye!".to_owned()),
                        end_call: true,
                        error_message: None,
                    },
                ],
                    default_reply: Some("Sorry, could you say that again?".to_owned()),
                    ..Scenario::greeting_only(max)
                },
            ],
            clients: vec![
                ClientConfig {
                    client_id: "speaknode-bff-demo".to_owned(),
                    client_secret: Some(client_secret),
                    space_id,
                    redirect_uris: Vec::new(),
                },
                ClientConfig {
                    client_id: DEMO_PUBLIC_CLIENT.to_owned(),
                    redirect_uris: DEMO_REDIRECT_URIS.map(str::to_owned).to_vec(),
                    ..ClientConfig::default()
                },
            ],
            // A well-known password is acceptable here: the sandbox holds no real data and
            // listens on loopback by default.
            users: vec![UserConfig {
                id: uuid!("9b2d4f6e-1a3c-4e5f-8a7b-6c5d4e3f2a1b"),
                username: "demo".to_owned(),
                password: SecretString::from("demo"),
                space_id,
            }],
            agents: vec![
                AgentConfig {
                    id: ava,
                    title: "Ava".to_owned(),
                    space_id,
                    greeting: "Hi! I'm Ava. How can I help you today?".to_owned(),
                    description: "Front desk agent of the demo store".to_owned(),
                    language_locale_code: default_language_locale_code(),
                },
                AgentConfig {
                    id: max,
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
        ensure!(
            self.key_rotation_secs != Some(0),
            "key_rotation_secs must be positive; leave it out to never rotate"
        );
        for (i, client) in self.clients.iter().enumerate() {
            let id = &client.client_id;
            ensure!(!id.is_empty(), "a client_id is empty");
            if self.clients[..i].iter().any(|c| c.client_id == *id) {
                bail!("client_id {id:?} appears twice");
            }
            // Only a confidential client has a service account, which needs a space.
            ensure!(
                client.client_secret.is_none() || !client.space_id.is_nil(),
                "client {id:?} has a secret but no space_id for its service account"
            );
            for uri in &client.redirect_uris {
                ensure!(
                    is_redirect_uri(uri),
                    "redirect URI {uri:?} of client {id:?} must be absolute, without a \
                     fragment, spaces or non-ASCII characters"
                );
            }
        }
        for (i, user) in self.users.iter().enumerate() {
            let name = &user.username;
            ensure!(!name.is_empty(), "a username is empty");
            ensure!(
                !user.password.expose_secret().is_empty(),
                "user {name:?} has an empty password"
            );
            if self.users[..i]
                .iter()
                .any(|u| u.username.eq_ignore_ascii_case(name) || u.id == user.id)
            {
                bail!("user {name:?} or its id appears twice");
            }
        }
        for (i, agent) in self.agents.iter().enumerate() {
            if self.agents[..i].iter().any(|a| a.id == agent.id) {
                bail!("agent id {} appears twice", agent.id);
            }
        }
        let agents: HashMap<Uuid, Uuid> = self.agents.iter().map(|a| (a.id, a.space_id)).collect();
        catalog::validate(&self.tools, &self.phone_numbers, &agents)?;
        self.rate_limit.validate()?;
        let agents: HashSet<Uuid> = agents.into_keys().collect();
        scenario::validate(&self.scenarios, &agents)?;
        self.livekit.validate()?;
        self.validate_events()
    }

    /// The inline scenarios and those of `scenario_file`, checked together (so an agent
    /// cannot have one in each). Reads the file: call it once, at start-up.
    pub(crate) fn all_scenarios(&self) -> anyhow::Result<Vec<Scenario>> {
        let mut scenarios = self.scenarios.clone();
        if let Some(path) = &self.scenario_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read scenario file {}", path.display()))?;
            let more = scenario::from_toml(&text)
                .with_context(|| format!("in scenario file {}", path.display()))?;
            scenarios.extend(more);
        }
        let agents: HashSet<Uuid> = self.agents.iter().map(|a| a.id).collect();
        scenario::validate(&scenarios, &agents)?;
        Ok(scenarios)
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

/// An absolute URI (RFC 6749 §3.1.2) that can go into a `Location` header as it is: a
/// scheme, no fragment, and only visible ASCII.
fn is_redirect_uri(uri: &str) -> bool {
    let Some((scheme, rest)) = uri.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !rest.is_empty()
        && !uri.contains('#')
        && uri.bytes().all(|b| b.is_ascii_graphic())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(config.refresh_token_ttl_secs, 1800);
        assert_eq!(config.key_rotation_secs, None);
        let secret = config.clients[0]
            .client_secret
            .as_ref()
            .map(|s| s.expose_secret());
        assert_eq!(secret, Some("s3cret"));
        assert!(config.clients[0].redirect_uris.is_empty());
        assert_eq!(config.agents[0].language_locale_code, "en-US");
        assert_eq!(config.agents[0].description, "");
        assert_eq!(
            (config.timing.dispatch_ms, config.timing.join_ms),
            (300, 700)
        );
        assert!(!config.admin_enabled);
        assert_eq!(config.rate_limit, RateLimit::default());
        assert!(config.tools.is_empty() && config.scenarios.is_empty());
        Ok(())
    }

    #[test]
    fn reads_tools_numbers_scenarios_and_limits() -> anyhow::Result<()> {
        let config = Config::from_toml(
            r#"
            admin_enabled = true
            rate_limit = { permit_limit = 5, window_secs = 2 }

            [[agents]]
            id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
            title = "Ava"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            greeting = "Hi!"

            [[tools]]
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            type = "Webhook"
            code = "check_order_status"
            method = "GET"
            url = "https://shop.example.com/orders/{{ order_id }}"

            [[tools]]
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            type = "System"
            code = "end_call"

            [[phone_numbers]]
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            number = "+4930123456789"
            agent_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

            [[scenarios]]
            agent_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
            think_ms = 10
            fail = { after_turns = 2, error_message = "boom" }
            [[scenarios.replies]]
            pattern = "bye"
            reply = "Bye!"
            end_call = true
            "#,
        )?;
        assert!(config.admin_enabled);
        assert_eq!(config.rate_limit.permit_limit, 5);
        assert_eq!(config.tools.len(), 2);
        assert_eq!(config.phone_numbers[0].telecom_provider, "Twilio");
        assert_eq!(config.scenarios[0].think_ms, 10);
        assert_eq!(config.all_scenarios()?.len(), 1);
        Ok(())
    }

    #[test]
    fn rejects_a_scenario_for_an_unknown_agent() {
        let text = r#"
            [[scenarios]]
            agent_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
        "#;
        assert!(Config::from_toml(text).is_err());
    }

    #[test]
    fn a_missing_scenario_file_is_an_error() {
        let config = Config {
            scenario_file: Some(PathBuf::from("/nonexistent/scenarios.toml")),
            ..Config::default()
        };
        assert!(config.all_scenarios().is_err());
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
    fn reads_public_clients_and_users() -> anyhow::Result<()> {
        let config = Config::from_toml(
            r#"
            key_rotation_secs = 3600
            [[clients]]
            client_id = "spa"
            redirect_uris = ["http://127.0.0.1:3000/callback", "com.example.app:/oauth"]
            [[users]]
            username = "alice"
            password = "wonderland"
            space_id = "0f8fad5b-d9cb-469f-a165-70867728950e"
            "#,
        )?;
        assert!(config.clients[0].client_secret.is_none());
        assert_eq!(config.key_rotation_secs, Some(3600));
        assert_eq!(config.users[0].password.expose_secret(), "wonderland");
        assert!(!config.users[0].id.is_nil());
        Ok(())
    }

    #[test]
    fn rejects_unusable_clients_users_and_rotation() {
        let space = r#"space_id = "0f8fad5b-d9cb-469f-a165-70867728950e""#;
        let bad = [
            "key_rotation_secs = 0".to_owned(),
            // A confidential client without a space has no service account to act as.
            "[[clients]]\nclient_id = \"c\"\nclient_secret = \"s\"".to_owned(),
            "[[clients]]\nclient_id = \"c\"\nredirect_uris = [\"/relative\"]".to_owned(),
            "[[clients]]\nclient_id = \"c\"\nredirect_uris = [\"http://a/#f\"]".to_owned(),
            "[[clients]]\nclient_id = \"c\"\nredirect_uris = [\"http://a/ b\"]".to_owned(),
            format!("[[users]]\nusername = \"a\"\npassword = \"\"\n{space}"),
            format!(
                "[[users]]\nusername = \"a\"\npassword = \"x\"\n{space}\n\
                 [[users]]\nusername = \"A\"\npassword = \"y\"\n{space}"
            ),
        ];
        for text in bad {
            assert!(Config::from_toml(&text).is_err(), "accepted: {text}");
        }
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
    fn livekit_defaults_and_overrides() -> anyhow::Result<()> {
        let config = Config::from_toml("")?;
        let livekit = &config.livekit;
        assert_eq!(livekit.api_key, "devkey");
        assert!(livekit.api_secret.is_none());
        assert_eq!(livekit.token_ttl_secs, 300);
        assert_eq!(
            livekit.url_for("http://127.0.0.1:8780"),
            "ws://127.0.0.1:8780"
        );
        assert_eq!(
            livekit.url_for("https://sandbox.example/"),
            "wss://sandbox.example"
        );

        let config = Config::from_toml(
            r#"
            [livekit]
            url = "wss://livekit.example"
            api_key = "APIabc"
            api_secret = "s3cret"
            token_ttl_secs = 60
            "#,
        )?;
        let livekit = &config.livekit;
        assert_eq!(
            livekit.url_for("http://127.0.0.1:8780"),
            "wss://livekit.example"
        );
        assert_eq!(livekit.api_key, "APIabc");
        assert_eq!(
            livekit.api_secret.as_ref().map(|s| s.expose_secret()),
            Some("s3cret")
        );
        assert_eq!(livekit.token_ttl_secs, 60);
        Ok(())
    }

    #[test]
    fn rejects_unusable_livekit_settings() {
        for bad in [
            "[livekit]\nurl = \"http://livekit.example\"",
            "[livekit]\nurl = \"not a url\"",
            "[livekit]\napi_key = \"\"",
            "[livekit]\napi_secret = \"\"",
            "[livekit]\ntoken_ttl_secs = 0",
            "[livekit]\nunknown = 1",
        ] {
            assert!(Config::from_toml(bad).is_err(), "accepted: {bad}");
        }
    }

    #[test]
    fn demo_config_is_valid() {
        assert!(Config::demo(SecretString::from("x")).validate().is_ok());
    }
}
