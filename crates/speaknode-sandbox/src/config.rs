//! The sandbox's configuration: plain data, read from TOML or written as a literal in tests.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
};

use anyhow::{Context as _, bail, ensure};
use secrecy::SecretString;
use serde::Deserialize;
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
    /// Confidential clients with a service account (`client_credentials`).
    pub clients: Vec<ClientConfig>,
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
            tools: Vec::new(),
            phone_numbers: Vec::new(),
            scenarios: Vec::new(),
            scenario_file: None,
            rate_limit: RateLimit::default(),
            admin_enabled: false,
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
        let ava = uuid!("7c9e6679-7425-40de-944b-e07fc1f90ae7");
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
            scenarios: vec![Scenario {
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
                default_reply: Some("I can help with orders. What's your order number?".to_owned()),
                ..Scenario::greeting_only(ava)
            }],
            clients: vec![ClientConfig {
                client_id: "speaknode-bff-demo".to_owned(),
                client_secret,
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
        let agents: HashMap<Uuid, Uuid> = self.agents.iter().map(|a| (a.id, a.space_id)).collect();
        catalog::validate(&self.tools, &self.phone_numbers, &agents)?;
        self.rate_limit.validate()?;
        let agents: HashSet<Uuid> = agents.into_keys().collect();
        scenario::validate(&self.scenarios, &agents)
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
    fn demo_config_is_valid() {
        assert!(Config::demo(SecretString::from("x")).validate().is_ok());
    }
}
