//! A small client of SignalR's JSON hub protocol over tokio-tungstenite, written from the
//! protocol's spec as a widget would speak it without Microsoft's client, to test the hub.

use std::{collections::VecDeque, time::Duration};

use futures_util::{SinkExt as _, StreamExt as _};
use reqwest::header;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{self, Message, client::IntoClientRequest as _, http::StatusCode},
};

use crate::support::Sandbox;

/// The record separator that ends every JSON hub message.
pub const RS: char = '\u{1e}';

/// How long a test waits for the hub to say something.
const DEADLINE: Duration = Duration::from_secs(10);

/// `{"protocol":"json","version":1}` and its separator.
pub fn handshake() -> String {
    format!(r#"{{"protocol":"json","version":1}}{RS}"#)
}

/// `POST /hubs/notifications/negotiate{query}`, with the token as a bearer header if any.
pub async fn negotiate(sandbox: &Sandbox, query: &str, token: Option<&str>) -> reqwest::Response {
    let mut request = sandbox
        .http
        .post(sandbox.url(&format!("/hubs/notifications/negotiate{query}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("negotiate")
}

/// A connection token from a successful version 1 negotiation.
pub async fn connection_token(sandbox: &Sandbox, token: &str) -> String {
    let response = negotiate(sandbox, "?negotiateVersion=1", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("negotiation JSON");
    body["connectionToken"]
        .as_str()
        .expect("connectionToken")
        .to_owned()
}

/// Opens the hub's WebSocket with `query`, and `authorization` as a header if given; the
/// HTTP status when the server refuses the upgrade.
pub async fn open(
    sandbox: &Sandbox,
    query: &str,
    authorization: Option<&str>,
) -> Result<HubClient, StatusCode> {
    let url = format!("{}/hubs/notifications{query}", sandbox.base).replacen("http", "ws", 1);
    let mut request = url.into_client_request().expect("WebSocket request");
    if let Some(authorization) = authorization {
        let value = authorization.parse().expect("header value");
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(HubClient {
            socket,
            records: VecDeque::new(),
        }),
        Err(tungstenite::Error::Http(response)) => Err(response.status()),
        Err(error) => panic!("WebSocket connect failed: {error}"),
    }
}

/// A hub connection of `token`'s space after a completed handshake.
pub async fn connect(sandbox: &Sandbox, token: &str) -> HubClient {
    let id = connection_token(sandbox, token).await;
    let mut client = open(sandbox, &format!("?id={id}&access_token={token}"), None)
        .await
        .expect("WebSocket upgrade");
    client.send(&handshake()).await;
    assert_eq!(client.next().await, json!({}), "handshake response");
    client
}

pub struct HubClient {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Records read from a frame but not yet asked for.
    records: VecDeque<Value>,
}

impl HubClient {
    /// Sends `text` as one text frame, records and separators as they are.
    pub async fn send(&mut self, text: &str) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("send a frame");
    }

    /// The next record the server sent, in order, pings included.
    pub async fn next(&mut self) -> Value {
        loop {
            if let Some(record) = self.records.pop_front() {
                return record;
            }
            match self.frame().await {
                Some(Message::Text(text)) => {
                    assert!(text.ends_with(RS), "a frame of whole records: {text:?}");
                    for record in text.split_terminator(RS) {
                        let record = serde_json::from_str(record).expect("a JSON record");
                        self.records.push_back(record);
                    }
                }
                Some(Message::Close(_)) | None => panic!("the hub closed while a record was due"),
                Some(_) => {}
            }
        }
    }

    /// The next record that is not a ping.
    pub async fn next_message(&mut self) -> Value {
        loop {
            let record = self.next().await;
            if record != json!({ "type": 6 }) {
                return record;
            }
        }
    }

    /// The next invocation, which must be of `target`; the whole message.
    pub async fn invocation(&mut self, target: &str) -> Value {
        let message = self.next_message().await;
        assert_eq!(message["type"], 1, "{message}");
        assert_eq!(message["target"], target, "{message}");
        message
    }

    /// Waits for the server to close the WebSocket, failing on any record before that.
    pub async fn expect_closed(&mut self) {
        assert!(self.records.is_empty(), "records left: {:?}", self.records);
        // Reading on after the server's close frame sends the answering one, which completes
        // the closing handshake.
        while let Some(frame) = self.frame().await {
            if let Message::Text(text) = frame {
                panic!("a record instead of the close: {text:?}");
            }
        }
    }

    /// The next WebSocket message; `None` once the connection has ended.
    async fn frame(&mut self) -> Option<Message> {
        match tokio::time::timeout(DEADLINE, self.socket.next()).await {
            Ok(Some(Ok(message))) => Some(message),
            Ok(Some(Err(_)) | None) => None,
            Err(_) => panic!("the hub sent nothing within {DEADLINE:?}"),
        }
    }
}
