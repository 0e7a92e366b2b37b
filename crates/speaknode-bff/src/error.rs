//! The BFF's one error type, its one status mapping and its problem+json rendering.
//!
//! A response names the problem with a stable code and a fixed sentence; what actually
//! went wrong upstream or inside the BFF is logged in the request's span and never sent,
//! so no platform URL, body or token can reach a browser through an error.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use speaknode_api::{ErrorCode, Problem};

use crate::limits::{Limit, LimitError};
use crate::token::TokenError;
use crate::upstream::UpstreamError;

/// Sent with 503s that are the BFF's own: long enough for a store to fail over.
const UNAVAILABLE_RETRY_AFTER_SECS: u64 = 5;

/// Everything a widget API request can fail with.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppError {
    #[error("the widget header is missing or has another value")]
    MissingWidgetHeader,
    /// The detail is about the client's own input and safe to send back.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    #[error("the body is not declared as JSON")]
    UnsupportedMediaType,
    #[error("the body is too large")]
    PayloadTooLarge,
    #[error("the method is not allowed on this path")]
    MethodNotAllowed,
    #[error("the origin may not use this agent")]
    OriginNotAllowed,
    #[error("the agent is not configured or unknown to the platform")]
    AgentNotFound,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("the token does not allow this action")]
    Forbidden,
    #[error("no such resource for this token")]
    NotFound,
    #[error("the conversation has already ended")]
    ConversationEnded,
    #[error("the request did not finish within its deadline")]
    Timeout,
    #[error("the {limit} rate limit is exhausted (retry after {retry_after} s)")]
    RateLimited { limit: Limit, retry_after: u64 },
    /// A dependency of the BFF's own (the rate limit store) cannot answer, or the BFF is
    /// not ready; the message is for the log only.
    #[error("the BFF cannot serve now: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    /// The one mapping from error to HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::MissingWidgetHeader | Self::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::OriginNotAllowed | Self::Forbidden => StatusCode::FORBIDDEN,
            Self::AgentNotFound | Self::NotFound => StatusCode::NOT_FOUND,
            Self::ConversationEnded => StatusCode::CONFLICT,
            Self::Token(_) => StatusCode::UNAUTHORIZED,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Upstream(error) => match error {
                UpstreamError::RateLimited { .. }
                | UpstreamError::IdentityUnavailable(_)
                | UpstreamError::NeedsLogin => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
                // A 404 that a handler did not expect is the platform misbehaving.
                UpstreamError::NotFound
                | UpstreamError::Conflict
                | UpstreamError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            },
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> ErrorCode {
        match self {
            Self::MissingWidgetHeader => ErrorCode::MissingWidgetHeader,
            Self::InvalidRequest(_)
            | Self::UnsupportedMediaType
            | Self::PayloadTooLarge
            | Self::MethodNotAllowed => ErrorCode::InvalidRequest,
            Self::OriginNotAllowed => ErrorCode::OriginNotAllowed,
            Self::AgentNotFound => ErrorCode::AgentNotFound,
            Self::Token(TokenError::Expired) => ErrorCode::TokenExpired,
            Self::Token(TokenError::Invalid(_)) => ErrorCode::InvalidToken,
            Self::Forbidden => ErrorCode::Forbidden,
            Self::NotFound => ErrorCode::NotFound,
            Self::ConversationEnded => ErrorCode::ConversationEnded,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            // The nearest code a widget knows: try again later.
            Self::Timeout | Self::Upstream(_) | Self::Unavailable(_) => {
                ErrorCode::UpstreamUnavailable
            }
            Self::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The sentence the client sees; fixed per variant except for the client's own input.
    fn detail(&self) -> String {
        match self {
            Self::MissingWidgetHeader => format!(
                "Send the header {}: {}.",
                speaknode_api::WIDGET_HEADER,
                speaknode_api::WIDGET_HEADER_VALUE
            ),
            Self::InvalidRequest(detail) => detail.clone(),
            Self::UnsupportedMediaType => "Send the body as Content-Type: application/json.".into(),
            Self::PayloadTooLarge => "The request body is too large.".into(),
            Self::MethodNotAllowed => "This method is not allowed here.".into(),
            Self::OriginNotAllowed => "This page's origin may not use this agent.".into(),
            Self::AgentNotFound => "There is no such agent for this widget.".into(),
            Self::Token(TokenError::Expired) => "The widget token has expired.".into(),
            Self::Token(TokenError::Invalid(_)) => "The widget token is missing or invalid.".into(),
            Self::Forbidden => "The widget token does not allow this action.".into(),
            Self::NotFound => "There is no such resource for this token.".into(),
            Self::ConversationEnded => "The conversation has already ended.".into(),
            Self::Timeout | Self::Upstream(_) => {
                "The SpeakNode platform is unavailable; please try again later.".into()
            }
            Self::RateLimited { .. } => "Too many requests; please retry later.".into(),
            Self::Unavailable(_) => {
                "The widget backend is unavailable; please try again later.".into()
            }
            Self::Internal(_) => "Something went wrong in the widget backend.".into(),
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Upstream(UpstreamError::RateLimited { retry_after })
            | Self::RateLimited { retry_after, .. } => Some(*retry_after),
            Self::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECS),
            _ => None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        // This runs inside the request's span, so the log line carries method and route.
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let problem = Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: Some(self.detail()),
            code: self.code(),
            retry_after: self.retry_after(),
        };
        let code = problem.code;
        let mut response = (status, Json(problem)).into_response();
        // For the metrics layer, which counts refusals by code.
        response.extensions_mut().insert(code);
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: tell the client which scheme and why.
            let challenge = HeaderValue::from_static(r#"Bearer error="invalid_token""#);
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if let Some(seconds) = self.retry_after() {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<LimitError> for AppError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Exceeded { limit, retry_after } => Self::RateLimited { limit, retry_after },
            LimitError::Unavailable(error) => Self::Unavailable(error.to_string()),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection.status() {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            _ => Self::InvalidRequest(rejection.body_text()),
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(_: PathRejection) -> Self {
        // A path parameter that does not even decode names nothing this token may see.
        Self::NotFound
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderMap;

    async fn render(error: AppError) -> (StatusCode, HeaderMap, serde_json::Value) {
        let response = error.into_response();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.expect("body");
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).expect("json"),
        )
    }

    #[tokio::test]
    async fn attack_09_upstream_detail_never_reaches_the_body() {
        let secret_ish = "http://10.0.0.7/realms/x token=eyJhbGciOi";
        let (status, headers, body) =
            render(UpstreamError::BadGateway(secret_ish.into()).into()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(headers[CONTENT_TYPE], "application/problem+json");
        assert_eq!(body["code"], "upstream_unavailable");
        assert!(!body.to_string().contains("10.0.0.7"));
        assert!(!body.to_string().contains("eyJ"));
        let internal = AppError::Internal(anyhow::anyhow!("{secret_ish}"));
        assert!(!render(internal).await.2.to_string().contains("eyJ"));
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after_in_header_and_body() {
        let (status, headers, body) =
            render(UpstreamError::RateLimited { retry_after: 7 }.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(headers[RETRY_AFTER], "7");
        assert_eq!(body["retry_after"], 7);
    }

    #[tokio::test]
    async fn token_errors_are_401_with_a_bearer_challenge() {
        let (status, headers, body) = render(TokenError::Expired.into()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], "token_expired");
        assert!(
            headers[WWW_AUTHENTICATE]
                .to_str()
                .expect("ascii")
                .starts_with("Bearer")
        );
        let (_, _, body) = render(TokenError::Invalid("kid".into()).into()).await;
        assert_eq!(body["code"], "invalid_token");
        assert!(
            !body.to_string().contains("kid"),
            "the reason is for the log only"
        );
    }

    #[tokio::test]
    async fn exhausted_limits_are_429_with_retry_after_and_store_outages_are_503() {
        let exceeded = LimitError::Exceeded {
            limit: Limit::Ip,
            retry_after: 12,
        };
        let (status, headers, body) = render(exceeded.into()).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["code"], "rate_limited");
        assert_eq!(headers[RETRY_AFTER], "12");
        assert_eq!(body["retry_after"], 12);
        let (status, headers, body) =
            render(AppError::Unavailable("redis://:pw@10.0.0.9 refused".into())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "upstream_unavailable");
        assert!(headers.contains_key(RETRY_AFTER));
        assert!(!body.to_string().contains("10.0.0.9"));
    }

    #[test]
    fn upstream_failures_map_to_gateway_statuses() {
        let status = |e: UpstreamError| AppError::from(e).status();
        assert_eq!(
            status(UpstreamError::Timeout(String::new())),
            StatusCode::GATEWAY_TIMEOUT
        );
        assert_eq!(
            status(UpstreamError::IdentityUnavailable(String::new())),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status(UpstreamError::BadGateway(String::new())),
            StatusCode::BAD_GATEWAY
        );
        assert_eq!(status(UpstreamError::NotFound), StatusCode::BAD_GATEWAY);
        assert_eq!(
            status(UpstreamError::NeedsLogin),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test]
    async fn a_missing_authorisation_tells_the_log_not_the_browser() {
        let error = UpstreamError::NeedsLogin;
        assert!(error.to_string().contains("speaknode-bff login"));
        let (status, _, body) = render(error.into()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["code"], "upstream_unavailable");
        assert!(!body.to_string().contains("login"), "{body}");
    }
}
