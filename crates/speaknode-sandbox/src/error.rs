//! The sandbox's one error type and how each error is written on the wire.
//!
//! The REST API answers RFC 9457 problem details; the token endpoint answers RFC 6749 §5.2
//! bodies, because OAuth clients parse those and nothing else.

use std::collections::BTreeMap;

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

use crate::model::random_hex;

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// No usable bearer token; `token_sent` tells a bad token from a missing one, because
    /// RFC 6750 §3.1 puts an error code in the challenge only in the first case.
    #[error("unauthorized (token sent: {token_sent})")]
    Unauthorized { token_sent: bool },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Members of the request body and what is wrong with each.
    #[error("validation failed: {0:?}")]
    Validation(BTreeMap<String, Vec<String>>),
    /// Token endpoint: unknown client or wrong secret; `basic` when the client used HTTP Basic.
    #[error("invalid client")]
    InvalidClient { basic: bool },
    /// Token endpoint: a missing, repeated or malformed parameter.
    #[error("invalid token request: {0}")]
    InvalidTokenRequest(String),
    #[error("unsupported grant type {0:?}")]
    UnsupportedGrantType(String),
    /// Query parameters and what is wrong with each: ASP.NET's model binding answers these
    /// with 400, not 422, because the request line itself is malformed.
    #[error("invalid query: {0:?}")]
    InvalidQuery(BTreeMap<String, Vec<String>>),
    #[error("{0}")]
    Conflict(String),
    /// Too many requests; the client may retry after this many seconds.
    #[error("rate limited for {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// A server error that an injected fault asked for (500–599).
    #[error("injected fault {0}")]
    Fault(StatusCode),
    /// Token endpoint: the identity provider is down (an injected outage).
    #[error("token endpoint unavailable")]
    TokenEndpointUnavailable,
    /// Token endpoint: a code or refresh token that is not (or no longer) valid for this
    /// client; the text is Keycloak's `error_description`.
    #[error("invalid grant: {0}")]
    InvalidGrant(String),
    /// Token endpoint: the client may not use this grant type.
    #[error("unauthorized client: {0}")]
    UnauthorizedClient(String),
    /// Token endpoint: a requested scope the realm does not offer.
    #[error("invalid scope: {0}")]
    InvalidScope(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Error::Unauthorized { .. } | Error::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::BadRequest(_)
            | Error::InvalidTokenRequest(_)
            | Error::UnsupportedGrantType(_)
            | Error::InvalidQuery(_)
            | Error::InvalidGrant(_)
            | Error::UnauthorizedClient(_)
            | Error::InvalidScope(_) => StatusCode::BAD_REQUEST,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Fault(status) => *status,
            Error::TokenEndpointUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `detail` of a problem: what went wrong, in words safe to show a client.
    fn detail(&self) -> String {
        match self {
            Error::Unauthorized { .. } => "The bearer token is missing, invalid or expired.".into(),
            Error::NotFound(detail) | Error::BadRequest(detail) | Error::Conflict(detail) => {
                detail.clone()
            }
            Error::InvalidQuery(_) => "One or more query parameters are invalid.".into(),
            Error::RateLimited { retry_after_secs } => {
                format!("Rate limit exceeded. Retry after {retry_after_secs} seconds.")
            }
            Error::Fault(status) if *status == StatusCode::SERVICE_UNAVAILABLE => {
                "The service is temporarily unavailable.".into()
            }
            Error::PayloadTooLarge => "The request body is larger than 64 KiB.".into(),
            Error::UnsupportedMediaType => "The request body must be application/json.".into(),
            Error::MethodNotAllowed => "The method is not allowed on this resource.".into(),
            Error::Validation(_) => "The request body failed validation.".into(),
            // These are answered as OAuth errors, never as problems; the text is for logs.
            Error::InvalidClient { .. }
            | Error::InvalidTokenRequest(_)
            | Error::UnsupportedGrantType(_)
            | Error::TokenEndpointUnavailable
            | Error::InvalidGrant(_)
            | Error::UnauthorizedClient(_)
            | Error::InvalidScope(_) => self.to_string(),
            Error::Internal(_) | Error::Fault(_) => "An unexpected error occurred.".into(),
        }
    }

    /// The RFC 6749 `error` code and `error_description` of a token endpoint error.
    fn oauth(&self) -> Option<(&'static str, String)> {
        match self {
            // Keycloak's wording, which the fixture copies.
            Error::InvalidClient { .. } => Some((
                "invalid_client",
                "Invalid client or Invalid client credentials".into(),
            )),
            Error::InvalidTokenRequest(detail) => Some(("invalid_request", detail.clone())),
            Error::UnsupportedGrantType(_) => {
                Some(("unsupported_grant_type", "Unsupported grant_type".into()))
            }
            // RFC 6749 §4.1.2.1's code for a server that cannot answer for now.
            Error::TokenEndpointUnavailable => Some((
                "temporarily_unavailable",
                "The identity provider is temporarily unavailable.".into(),
            )),
            Error::InvalidGrant(detail) => Some(("invalid_grant", detail.clone())),
            Error::UnauthorizedClient(detail) => Some(("unauthorized_client", detail.clone())),
            Error::InvalidScope(detail) => Some(("invalid_scope", detail.clone())),
            _ => None,
        }
    }
}

/// The `type` and `title` ASP.NET Core gives each status.
fn problem_type(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "Bad Request",
        ),
        401 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.2",
            "Unauthorized",
        ),
        404 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.5",
            "Not Found",
        ),
        405 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.6",
            "Method Not Allowed",
        ),
        409 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.10",
            "Conflict",
        ),
        413 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.14",
            "Content Too Large",
        ),
        415 => (
            "https://tools.ietf.org/html/rfc9110#section-15.5.16",
            "Unsupported Media Type",
        ),
        422 => (
            "https://tools.ietf.org/html/rfc4918#section-11.2",
            "One or more validation errors occurred.",
        ),
        429 => (
            "https://tools.ietf.org/html/rfc6585#section-4",
            "Too Many Requests",
        ),
        502 => (
            "https://tools.ietf.org/html/rfc9110#section-15.6.3",
            "Bad Gateway",
        ),
        503 => (
            "https://tools.ietf.org/html/rfc9110#section-15.6.4",
            "Service Unavailable",
        ),
        504 => (
            "https://tools.ietf.org/html/rfc9110#section-15.6.5",
            "Gateway Timeout",
        ),
        _ => (
            "https://tools.ietf.org/html/rfc9110#section-15.6.1",
            "An error occurred while processing your request.",
        ),
    }
}

#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(rename = "traceId")]
    trace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<&'a BTreeMap<String, Vec<String>>>,
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Error::Internal(error) = &self {
            tracing::error!(error = format!("{error:#}"), "request failed");
        } else {
            tracing::debug!(error = %self, status = status.as_u16(), "request rejected");
        }

        if let Some((code, description)) = self.oauth() {
            let mut response = (
                status,
                [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
                Json(json!({ "error": code, "error_description": description })),
            )
                .into_response();
            if let Error::InvalidClient { basic: true } = self {
                // RFC 6749 §5.2: a client that tried HTTP Basic gets a Basic challenge.
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Basic realm="speaknode""#),
                );
            }
            return response;
        }

        let (kind, mut title) = problem_type(status);
        if let Error::InvalidQuery(_) = self {
            // ASP.NET's ValidationProblemDetails keeps the status's type but has this title.
            title = "One or more validation errors occurred.";
        }
        let problem = Problem {
            kind,
            title,
            status: status.as_u16(),
            detail: self.detail(),
            // A W3C traceparent, as ASP.NET's `Activity.Id`; the sandbox traces nothing
            // upstream, so a fresh one per problem is as good as any.
            trace_id: format!("00-{}-{}-00", random_hex(32), random_hex(16)),
            errors: match &self {
                Error::Validation(errors) | Error::InvalidQuery(errors) => Some(errors),
                _ => None,
            },
        };
        let mut response = (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            )],
            Json(problem),
        )
            .into_response();
        if let Error::Unauthorized { token_sent } = self {
            // ASP.NET JwtBearer's challenge: bare when no token came, with the error otherwise.
            let challenge = if token_sent {
                r#"Bearer error="invalid_token""#
            } else {
                "Bearer"
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let Error::RateLimited { retry_after_secs } = self {
            // RFC 9110 §10.2.3: delay-seconds, which is what ASP.NET's rate limiter sends.
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
