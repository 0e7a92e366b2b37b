//! Reading the BFF's server-sent events as a widget's `EventSource` would: incrementally,
//! skipping keep-alive comments, checking that ids increase and that no event leaks a
//! platform credential.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ORIGIN};
use serde_json::Value;
use speaknode_api::paths;

use super::{AVA_GREETING, Stack, find_leak};

/// How long any one expected event may take.
pub const EVENT_DEADLINE: Duration = Duration::from_secs(10);

/// One server-sent event.
#[derive(Debug)]
pub struct Sse {
    pub event: String,
    pub data: Value,
    pub id: Option<u64>,
    pub retry: Option<u64>,
}

/// An open event stream, read incrementally.
pub struct Events {
    body: BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buffer: String,
    issuer: String,
    last_id: u64,
}

pub enum Auth<'a> {
    Header(&'a str),
    Query(&'a str),
}

impl Events {
    /// Opens the stream of conversation `id` and asserts that it is one.
    pub async fn open(stack: &Stack, id: &str, auth: Auth<'_>, origin: &str) -> Events {
        let url = stack.url(&paths::conversation_events(id));
        let request = match auth {
            Auth::Header(token) => stack
                .http
                .get(url)
                .header(AUTHORIZATION, format!("Bearer {token}")),
            Auth::Query(token) => stack.http.get(url).query(&[("access_token", token)]),
        };
        // A client without the overall timeout, since a stream outlives any request.
        let response = request
            .header(ORIGIN, origin)
            .send()
            .await
            .expect("the BFF answers");
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "text/event-stream");
        Events {
            body: response
                .bytes_stream()
                .map(|chunk| chunk.map(|bytes| bytes.to_vec()))
                .boxed(),
            buffer: String::new(),
            issuer: stack.issuer.clone(),
            last_id: 0,
        }
    }

    /// The next event, or `None` once the BFF has closed the stream. Keep-alive comments
    /// are skipped; `id`s must increase.
    pub async fn next(&mut self) -> Option<Sse> {
        let read = async {
            loop {
                if let Some(end) = self.buffer.find("\n\n") {
                    let block: String = self.buffer.drain(..end + 2).collect();
                    if let Some(event) = self.parse(&block) {
                        return Some(event);
                    }
                    continue;
                }
                match self.body.next().await {
                    Some(chunk) => {
                        let chunk = chunk.expect("the stream reads");
                        self.buffer
                            .push_str(std::str::from_utf8(&chunk).expect("utf-8"));
                    }
                    None => {
                        assert!(self.buffer.trim().is_empty(), "{}", self.buffer);
                        return None;
                    }
                }
            }
        };
        tokio::time::timeout(EVENT_DEADLINE, read)
            .await
            .expect("an event or the end within the deadline")
    }

    fn parse(&mut self, block: &str) -> Option<Sse> {
        if let Some(leak) = find_leak(block, &self.issuer) {
            panic!("an event leaked {leak}: {block}");
        }
        let (mut event, mut data, mut id, mut retry) = (None, None, None, None);
        for line in block.lines() {
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = Some(value.to_owned()),
                "data" => data = Some(serde_json::from_str(value).expect("JSON data")),
                "id" => id = Some(value.parse().expect("a numeric id")),
                "retry" => retry = Some(value.parse().expect("milliseconds")),
                _ => {} // "" is a comment: a keep-alive.
            }
        }
        let event = event?;
        if let Some(id) = id {
            assert!(
                id > self.last_id,
                "ids increase: {id} after {}",
                self.last_id
            );
            self.last_id = id;
        }
        Some(Sse {
            event,
            data: data.expect("every event has data"),
            id,
            retry,
        })
    }

    /// The next `conversation` event's data.
    pub async fn conversation(&mut self) -> Value {
        let event = self.next().await.expect("an event");
        assert_eq!(event.event, "conversation", "{event:?}");
        event.data
    }

    /// Conversation events until one satisfies `done`; returns the statuses seen.
    pub async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<String> {
        let mut statuses = Vec::new();
        loop {
            let view = self.conversation().await;
            statuses.push(view["status"].as_str().expect("a status").to_owned());
            if done(&view) {
                return statuses;
            }
        }
    }

    /// Asserts the `end` event with `reason`, then that the stream closes.
    pub async fn assert_ends(&mut self, reason: &str) {
        let event = self.next().await.expect("an end event");
        assert_eq!(event.event, "end", "{event:?}");
        assert_eq!(event.data["reason"], reason, "{event:?}");
        assert!(self.next().await.is_none(), "the stream closes after end");
    }
}

pub fn active_with_greeting(view: &Value) -> bool {
    view["status"] == "Active"
        && view["history"]
            .as_array()
            .is_some_and(|turns| turns.iter().any(|turn| turn["text"] == AVA_GREETING))
}

/// Polls the BFF's metric `name` until it equals `value`.
pub async fn metric_becomes(stack: &Stack, name: &str, value: f64) {
    let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        let now = stack.metric(name).await;
        if now == value {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} is {now}, not {value}"
        );
    }
}
