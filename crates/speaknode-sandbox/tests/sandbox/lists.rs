//! The list routes: the page envelope, pagination, the conversation filters, space scoping,
//! tools and phone numbers.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use speaknode_sandbox::{AgentConfig, Config, PhoneNumberConfig, Timing, ToolConfig, ToolType};
use uuid::{Uuid, uuid};

use crate::support::{
    AVA, BFF, BORIS, OTHER_BFF, OTHER_SPACE, SPACE, Sandbox, assert_problem, assert_same_keys,
    config, fixture,
};

/// A second agent in the fixtures' space, so that the agent filter has something to filter.
const CLEO: Uuid = uuid!("9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d");

/// The test config plus Cleo, the admin routes and a dispatch slow enough that
/// conversations stay `Pending` unless a test ends them.
fn list_config() -> Config {
    let mut config = config(Timing {
        dispatch_ms: 600_000,
        join_ms: 1,
    });
    config.agents.push(AgentConfig {
        id: CLEO,
        title: "Cleo".to_owned(),
        space_id: SPACE,
        greeting: "Hey, Cleo here.".to_owned(),
        description: String::new(),
        language_locale_code: "en-GB".to_owned(),
    });
    config.admin_enabled = true;
    config
}

async fn page(sandbox: &Sandbox, path: &str, token: &str, query: &[(&str, &str)]) -> Value {
    let response = sandbox.get_query(path, token, query).await;
    assert_eq!(response.status(), StatusCode::OK, "{path} {query:?}");
    response.json().await.expect("page JSON")
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn agents_are_listed_per_space_in_the_page_envelope() {
    let sandbox = Sandbox::start(list_config()).await;
    let token = sandbox.token(BFF).await;
    let agents = page(&sandbox, "/api/v1/agents", &token, &[]).await;
    assert_same_keys(&agents, &fixture!("agents-page.json"));
    assert_eq!(ids(&agents), [AVA.to_string(), CLEO.to_string()]);
    assert_eq!(
        (
            &agents["page"],
            &agents["page_size"],
            &agents["total_count"],
            &agents["total_pages"]
        ),
        (&json!(1), &json!(20), &json!(2), &json!(1))
    );

    let second = page(
        &sandbox,
        "/api/v1/agents",
        &token,
        &[("page", "2"), ("page_size", "1")],
    )
    .await;
    assert_eq!(ids(&second), [CLEO.to_string()]);
    assert_eq!(
        (&second["total_count"], &second["total_pages"]),
        (&json!(2), &json!(2))
    );

    let other = sandbox.token(OTHER_BFF).await;
    let theirs = page(&sandbox, "/api/v1/agents", &other, &[]).await;
    assert_eq!(ids(&theirs), [BORIS.to_string()]);
}

#[tokio::test]
async fn conversations_are_listed_newest_first_without_history() {
    let sandbox = Sandbox::start(list_config()).await;
    let token = sandbox.token(BFF).await;
    let mut dispatched = Vec::new();
    for agent in [AVA, CLEO, AVA] {
        dispatched.push(sandbox.dispatch_web(&token, agent).await);
    }
    let newest_first: Vec<String> = dispatched
        .iter()
        .rev()
        .map(|c| c["id"].as_str().expect("id").to_owned())
        .collect();

    let all = page(&sandbox, "/api/v1/conversations", &token, &[]).await;
    assert_same_keys(&all, &fixture!("conversations-page.json"));
    assert_eq!(ids(&all), newest_first);
    assert!(all["items"][0].get("history").is_none(), "{all}");

    let first = page(
        &sandbox,
        "/api/v1/conversations",
        &token,
        &[("page_size", "2")],
    )
    .await;
    assert_eq!(ids(&first), newest_first[..2]);
    assert_eq!(
        (&first["total_count"], &first["total_pages"]),
        (&json!(3), &json!(2))
    );
    let second = page(
        &sandbox,
        "/api/v1/conversations",
        &token,
        &[("page_size", "2"), ("page", "2")],
    )
    .await;
    assert_eq!(ids(&second), newest_first[2..]);
    let beyond = page(&sandbox, "/api/v1/conversations", &token, &[("page", "9")]).await;
    assert_eq!(ids(&beyond), Vec::<String>::new());

    // Another space sees none of them, and its conversations are not seen here.
    let other = sandbox.token(OTHER_BFF).await;
    sandbox.dispatch_web(&other, BORIS).await;
    let theirs = page(&sandbox, "/api/v1/conversations", &other, &[]).await;
    assert_eq!(theirs["total_count"], 1);
    assert_eq!(theirs["items"][0]["agent_id"], BORIS.to_string());
    let ours = page(&sandbox, "/api/v1/conversations", &token, &[]).await;
    assert_eq!(ids(&ours), newest_first);
}

#[tokio::test]
async fn conversations_filter_by_agent_status_and_date_range() {
    let sandbox = Sandbox::start(list_config()).await;
    let token = sandbox.token(BFF).await;
    let first = sandbox.dispatch_web(&token, AVA).await;
    let second = sandbox.dispatch_web(&token, CLEO).await;
    let third = sandbox.dispatch_web(&token, AVA).await;
    let id = |c: &Value| c["id"].as_str().expect("id").to_owned();
    let list = "/api/v1/conversations";

    let cleo = CLEO.to_string();
    let by_agent = page(&sandbox, list, &token, &[("agent_id", &cleo)]).await;
    assert_eq!(ids(&by_agent), [id(&second)]);
    let nobody = Uuid::new_v4().to_string();
    let none = page(&sandbox, list, &token, &[("agent_id", &nobody)]).await;
    assert_eq!(none["total_count"], 0);

    // End the first conversation so there are two statuses to filter by.
    let end = format!("/__sandbox/conversations/{}/end", id(&first));
    assert_eq!(
        sandbox.admin(Method::POST, &end, None).await.status(),
        StatusCode::OK
    );
    let completed = page(&sandbox, list, &token, &[("status", "Completed")]).await;
    assert_eq!(ids(&completed), [id(&first)]);
    let pending = page(&sandbox, list, &token, &[("status", "Pending")]).await;
    assert_eq!(ids(&pending), [id(&third), id(&second)]);
    let either = page(&sandbox, list, &token, &[("status", "Pending,Completed")]).await;
    assert_eq!(either["total_count"], 3);
    let repeated = page(
        &sandbox,
        list,
        &token,
        &[("status", "Failed"), ("status", "completed")],
    )
    .await;
    assert_eq!(ids(&repeated), [id(&first)]);
    let combined = page(
        &sandbox,
        list,
        &token,
        &[("status", "Pending"), ("agent_id", &AVA.to_string())],
    )
    .await;
    assert_eq!(ids(&combined), [id(&third)]);

    // `from` is inclusive and `to` exclusive, on created_at.
    let at = |c: &Value| c["created_at"].as_str().expect("created_at").to_owned();
    let since = page(&sandbox, list, &token, &[("from", &at(&second))]).await;
    assert_eq!(ids(&since), [id(&third), id(&second)]);
    let before = page(&sandbox, list, &token, &[("to", &at(&second))]).await;
    assert_eq!(ids(&before), [id(&first)]);
    let window = page(
        &sandbox,
        list,
        &token,
        &[("from", &at(&second)), ("to", &at(&third))],
    )
    .await;
    assert_eq!(ids(&window), [id(&second)]);
    let tomorrow = (time::OffsetDateTime::now_utc() + time::Duration::days(1))
        .date()
        .to_string();
    let future = page(&sandbox, list, &token, &[("from", &tomorrow)]).await;
    assert_eq!(future["total_count"], 0);
    let until_tomorrow = page(&sandbox, list, &token, &[("to", &tomorrow)]).await;
    assert_eq!(until_tomorrow["total_count"], 3);
}

#[tokio::test]
async fn bad_query_values_are_400_problems_naming_each_parameter() {
    let sandbox = Sandbox::start(list_config()).await;
    let token = sandbox.token(BFF).await;
    let shape = fixture!("problem-bad-query.json");
    // Path, query, and the parameters the problem must name.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        &'static [&'static str],
    );
    let cases: [Case; 9] = [
        ("/api/v1/conversations", &[("page", "0")], &["page"]),
        (
            "/api/v1/conversations",
            &[("page_size", "0")],
            &["page_size"],
        ),
        ("/api/v1/agents", &[("page_size", "101")], &["page_size"]),
        ("/api/v1/tools", &[("page_size", "abc")], &["page_size"]),
        (
            "/api/v1/phone-numbers",
            &[("page", "-1"), ("page_size", "1.5")],
            &["page", "page_size"],
        ),
        ("/api/v1/conversations", &[("status", "Done")], &["status"]),
        (
            "/api/v1/conversations",
            &[("agent_id", "ava")],
            &["agent_id"],
        ),
        (
            "/api/v1/conversations",
            &[("from", "yesterday"), ("to", "2026-02-30")],
            &["from", "to"],
        ),
        (
            "/api/v1/conversations",
            &[("from", "2026-11-30"), ("to", "2026-11-29")],
            &["to"],
        ),
    ];
    for (path, query, members) in cases {
        let response = sandbox.get_query(path, &token, query).await;
        let mut expected = shape.clone();
        expected["errors"] = members
            .iter()
            .map(|m| (m.to_string(), json!([""])))
            .collect();
        let problem = assert_problem(response, StatusCode::BAD_REQUEST, &expected).await;
        assert_eq!(problem["title"], "One or more validation errors occurred.");
    }
    let problem = assert_problem(
        sandbox
            .get_query("/api/v1/agents", &token, &[("page_size", "101")])
            .await,
        StatusCode::BAD_REQUEST,
        &shape,
    )
    .await;
    assert_eq!(
        problem["errors"]["page_size"],
        json!(["The field page_size must be between 1 and 100."])
    );

    // Unknown parameters are ignored, and parameter names match in any case.
    let response = sandbox
        .get_query(
            "/api/v1/agents",
            &token,
            &[("sort", "title"), ("PAGE_SIZE", "1")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["page_size"], 1);
}

#[tokio::test]
async fn tools_and_phone_numbers_come_from_the_config_per_space() {
    let mut config = list_config();
    let tool = |space_id, kind, code: &str| ToolConfig {
        id: None,
        space_id,
        kind,
        code: code.to_owned(),
        name: None,
        description: format!("The {code} tool."),
        method: (kind == ToolType::Webhook).then(|| "POST".to_owned()),
        url: (kind == ToolType::Webhook).then(|| "https://example.com/{{ order_id }}".to_owned()),
    };
    config.tools = vec![
        tool(SPACE, ToolType::Webhook, "check_order_status"),
        tool(SPACE, ToolType::System, "end_call"),
        tool(SPACE, ToolType::System, "transfer"),
        tool(OTHER_SPACE, ToolType::System, "end_call"),
    ];
    let number = |space_id, number: &str, agent_id| PhoneNumberConfig {
        id: None,
        space_id,
        number: number.to_owned(),
        friendly_name: "Front desk".to_owned(),
        telecom_provider: "Twilio".to_owned(),
        agent_id,
    };
    config.phone_numbers = vec![
        number(SPACE, "+4930123456789", Some(AVA)),
        number(OTHER_SPACE, "+4940123456789", None),
    ];
    let sandbox = Sandbox::start(config).await;
    let token = sandbox.token(BFF).await;

    let tools = page(&sandbox, "/api/v1/tools", &token, &[]).await;
    assert_same_keys(&tools, &fixture!("tools-page.json"));
    let codes: Vec<_> = tools["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| (t["code"].clone(), t["type"].clone(), t["method"].clone()))
        .collect();
    assert_eq!(
        codes,
        [
            (json!("check_order_status"), json!("Webhook"), json!("POST")),
            (json!("end_call"), json!("System"), Value::Null),
            (json!("transfer"), json!("System"), Value::Null),
        ]
    );
    assert_eq!(
        tools["items"][0]["url"],
        "https://example.com/{{ order_id }}"
    );

    let numbers = page(&sandbox, "/api/v1/phone-numbers", &token, &[]).await;
    assert_same_keys(&numbers, &fixture!("phone-numbers-page.json"));
    assert_eq!(numbers["total_count"], 1);
    assert_eq!(numbers["items"][0]["number"], "+4930123456789");
    assert_eq!(numbers["items"][0]["agent_id"], AVA.to_string());
    assert_eq!(numbers["items"][0]["space_id"], SPACE.to_string());

    let other = sandbox.token(OTHER_BFF).await;
    let theirs = page(&sandbox, "/api/v1/tools", &other, &[]).await;
    assert_eq!(theirs["total_count"], 1);
    let theirs = page(&sandbox, "/api/v1/phone-numbers", &other, &[]).await;
    assert_eq!(theirs["items"][0]["number"], "+4940123456789");
    assert_eq!(theirs["items"][0]["agent_id"], Value::Null);
}
