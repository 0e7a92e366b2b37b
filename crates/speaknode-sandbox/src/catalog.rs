//! Tools and imported phone numbers: configured once, listed by `GET /api/v1/tools` and
//! `GET /api/v1/phone-numbers`, never changed while the sandbox runs.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, ensure};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::model::{Timestamp, is_e164};

/// The HTTP methods a webhook tool may use, as the platform's tool editor offers them.
const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// A tool of one space: a webhook the agent calls, or a built-in system tool.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// Fixed id; `None` gets a fresh one at start-up.
    #[serde(default)]
    pub id: Option<Uuid>,
    pub space_id: Uuid,
    #[serde(rename = "type")]
    pub kind: ToolType,
    /// The unique name the LLM calls the tool by, such as `check_order_status`.
    pub code: String,
    /// The display name; defaults to the code.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: String,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`; webhook tools only.
    #[serde(default)]
    pub method: Option<String>,
    /// The webhook's URL, which may hold `{{ variable }}` placeholders; webhook tools only.
    #[serde(default)]
    pub url: Option<String>,
}

/// The platform's two kinds of callable tool (transfer rules are agent settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToolType {
    Webhook,
    System,
}

/// A phone number imported into one space.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneNumberConfig {
    /// Fixed id; `None` gets a fresh one at start-up.
    #[serde(default)]
    pub id: Option<Uuid>,
    pub space_id: Uuid,
    /// E.164, such as `+4930123456789`.
    pub number: String,
    #[serde(default)]
    pub friendly_name: String,
    /// Who carries the number (default `Twilio`).
    #[serde(default = "default_provider")]
    pub telecom_provider: String,
    /// The agent that answers inbound calls, an agent of the same space.
    #[serde(default)]
    pub agent_id: Option<Uuid>,
}

fn default_provider() -> String {
    "Twilio".to_owned()
}

/// A tool as `GET /api/v1/tools` lists it (`fixtures/tools-page.json`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Tool {
    pub id: Uuid,
    pub space_id: Uuid,
    #[serde(rename = "type")]
    pub kind: ToolType,
    pub code: String,
    pub name: String,
    pub description: String,
    pub method: Option<String>,
    pub url: Option<String>,
    /// What the agent says before and while the tool runs; the sandbox configures neither.
    pub pre_tool_speech: Option<String>,
    pub progress_speech: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A phone number as `GET /api/v1/phone-numbers` lists it (`fixtures/phone-numbers-page.json`).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct PhoneNumber {
    pub id: Uuid,
    pub space_id: Uuid,
    pub number: String,
    pub friendly_name: String,
    pub telecom_provider: String,
    pub agent_id: Option<Uuid>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The configured tools and phone numbers, by space, in list order.
#[derive(Default)]
pub(crate) struct Catalog {
    tools: HashMap<Uuid, Vec<Tool>>,
    phone_numbers: HashMap<Uuid, Vec<PhoneNumber>>,
}

impl Catalog {
    /// The catalog of validated configuration, created at `now`. Tools are listed by name,
    /// numbers by number, so pages are stable.
    pub(crate) fn new(tools: &[ToolConfig], numbers: &[PhoneNumberConfig], now: Timestamp) -> Self {
        let mut catalog = Self::default();
        for tool in tools {
            catalog.tools.entry(tool.space_id).or_default().push(Tool {
                id: tool.id.unwrap_or_else(Uuid::new_v4),
                space_id: tool.space_id,
                kind: tool.kind,
                code: tool.code.clone(),
                name: tool.name.clone().unwrap_or_else(|| tool.code.clone()),
                description: tool.description.clone(),
                method: tool.method.as_ref().map(|m| m.to_ascii_uppercase()),
                url: tool.url.clone(),
                pre_tool_speech: None,
                progress_speech: None,
                created_at: now,
                updated_at: now,
            });
        }
        for number in numbers {
            let list = catalog.phone_numbers.entry(number.space_id).or_default();
            list.push(PhoneNumber {
                id: number.id.unwrap_or_else(Uuid::new_v4),
                space_id: number.space_id,
                number: number.number.clone(),
                friendly_name: number.friendly_name.clone(),
                telecom_provider: number.telecom_provider.clone(),
                agent_id: number.agent_id,
                created_at: now,
                updated_at: now,
            });
        }
        for list in catalog.tools.values_mut() {
            list.sort_by_key(|tool| (tool.name.to_lowercase(), tool.id));
        }
        for list in catalog.phone_numbers.values_mut() {
            list.sort_by(|a, b| a.number.cmp(&b.number));
        }
        catalog
    }

    pub(crate) fn tools(&self, space: Uuid) -> &[Tool] {
        self.tools.get(&space).map_or(&[], Vec::as_slice)
    }

    pub(crate) fn phone_numbers(&self, space: Uuid) -> &[PhoneNumber] {
        self.phone_numbers.get(&space).map_or(&[], Vec::as_slice)
    }
}

/// Rejects tools and numbers the platform would not let a space have. `agents` maps each
/// configured agent to its space.
pub(crate) fn validate(
    tools: &[ToolConfig],
    numbers: &[PhoneNumberConfig],
    agents: &HashMap<Uuid, Uuid>,
) -> anyhow::Result<()> {
    let mut codes = HashSet::new();
    for tool in tools {
        let code = &tool.code;
        ensure!(
            !code.is_empty()
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "tool code {code:?} must be lowercase ASCII letters, digits or '_'"
        );
        ensure!(
            codes.insert((tool.space_id, code)),
            "tool code {code:?} appears twice in space {}",
            tool.space_id
        );
        match (tool.kind, &tool.method, &tool.url) {
            (ToolType::Webhook, Some(method), Some(url)) => {
                ensure!(
                    METHODS.contains(&method.to_ascii_uppercase().as_str()),
                    "tool {code:?}: method {method:?} must be one of {METHODS:?}"
                );
                ensure!(
                    url.starts_with("http://") || url.starts_with("https://"),
                    "tool {code:?}: url {url:?} must start with http:// or https://"
                );
            }
            (ToolType::Webhook, _, _) => bail!("webhook tool {code:?} needs a method and a url"),
            (ToolType::System, None, None) => {}
            (ToolType::System, _, _) => bail!("system tool {code:?} has no method or url"),
        }
    }
    let mut seen = HashSet::new();
    for number in numbers {
        let digits = &number.number;
        ensure!(
            is_e164(digits),
            "phone number {digits:?} must be E.164, such as +4930123456789"
        );
        // A number can be imported into one space only: calls to it must reach one agent.
        ensure!(seen.insert(digits), "phone number {digits} appears twice");
        if let Some(agent) = number.agent_id {
            ensure!(
                agents.get(&agent) == Some(&number.space_id),
                "phone number {digits}: agent {agent} is not an agent of space {}",
                number.space_id
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(space_id: Uuid, code: &str) -> ToolConfig {
        ToolConfig {
            id: None,
            space_id,
            kind: ToolType::Webhook,
            code: code.into(),
            name: None,
            description: String::new(),
            method: Some("get".into()),
            url: Some("https://example.com/{{ order_id }}".into()),
        }
    }

    fn number(space_id: Uuid, number: &str, agent_id: Option<Uuid>) -> PhoneNumberConfig {
        PhoneNumberConfig {
            id: None,
            space_id,
            number: number.into(),
            friendly_name: String::new(),
            telecom_provider: default_provider(),
            agent_id,
        }
    }

    #[test]
    fn tools_need_the_members_of_their_type() {
        let space = Uuid::new_v4();
        let none = HashMap::new();
        assert!(validate(&[webhook(space, "check_order")], &[], &none).is_ok());
        let mut bad = webhook(space, "check_order");
        bad.method = Some("TRACE".into());
        assert!(validate(&[bad], &[], &none).is_err());
        let mut system = webhook(space, "end_call");
        system.kind = ToolType::System;
        assert!(validate(&[system.clone()], &[], &none).is_err());
        system.method = None;
        system.url = None;
        assert!(validate(&[system], &[], &none).is_ok());
        assert!(validate(&[webhook(space, "Check Order")], &[], &none).is_err());
        let twice = [webhook(space, "a"), webhook(space, "a")];
        assert!(validate(&twice, &[], &none).is_err());
        let other_space = [webhook(space, "a"), webhook(Uuid::new_v4(), "a")];
        assert!(validate(&other_space, &[], &none).is_ok());
    }

    #[test]
    fn numbers_are_e164_unique_and_answered_by_an_agent_of_their_space() {
        let (space, other, agent) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let agents = HashMap::from([(agent, space)]);
        let ok = number(space, "+4930123456789", Some(agent));
        assert!(validate(&[], std::slice::from_ref(&ok), &agents).is_ok());
        assert!(validate(&[], &[number(space, "030123", None)], &agents).is_err());
        assert!(validate(&[], &[ok.clone(), ok], &agents).is_err());
        let foreign = number(other, "+4930123456789", Some(agent));
        assert!(validate(&[], &[foreign], &agents).is_err());
    }

    #[test]
    fn lists_are_per_space_and_sorted() {
        let (space, other) = (Uuid::new_v4(), Uuid::new_v4());
        let mut b = webhook(space, "b");
        b.name = Some("Beta".into());
        let mut a = webhook(space, "a");
        a.name = Some("alpha".into());
        let catalog = Catalog::new(
            &[b, a, webhook(other, "c")],
            &[number(space, "+49302", None), number(space, "+49301", None)],
            Timestamp::now(),
        );
        let names: Vec<_> = catalog.tools(space).iter().map(|t| &t.name).collect();
        assert_eq!(names, ["alpha", "Beta"]);
        assert_eq!(catalog.tools(space)[0].method.as_deref(), Some("GET"));
        let numbers: Vec<_> = catalog
            .phone_numbers(space)
            .iter()
            .map(|n| &n.number)
            .collect();
        assert_eq!(numbers, ["+49301", "+49302"]);
        assert!(catalog.phone_numbers(other).is_empty());
        assert!(catalog.tools(Uuid::new_v4()).is_empty());
    }
}
