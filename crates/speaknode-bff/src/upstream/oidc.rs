//! The identity provider as the BFF uses it: discovery, the BFF's OAuth client, and the
//! parameters every grant request carries.

use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType};
use oauth2::{
    AuthUrl, ClientId, ClientSecret, EndpointNotSet, EndpointSet, HttpClientError,
    RequestTokenError, TokenUrl,
};
use reqwest::header::ACCEPT;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::{UpstreamError, read_capped, transport_error};
use crate::config::UpstreamConfig;

/// The BFF's client with its token endpoint set.
pub(crate) type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The error of a grant request made through the `oauth2` crate.
pub(crate) type GrantError = RequestTokenError<HttpClientError<reqwest::Error>, BasicErrorResponse>;

/// The members of the discovery document the BFF uses.
#[derive(Debug, Deserialize)]
pub(crate) struct Discovery {
    pub issuer: String,
    pub token_endpoint: String,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    /// RFC 9207: the provider names itself in every authorization response.
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    pub code_challenge_methods_supported: Option<Vec<String>>,
}

/// Who the BFF is at the identity provider and what it asks for.
pub(crate) struct Identity {
    /// The configured issuer without a trailing slash.
    pub issuer: String,
    pub client_id: String,
    /// `None` for a public client (only possible in refresh-token mode).
    client_secret: Option<SecretString>,
    resource: Option<String>,
    audience: Option<String>,
    pub scope: Option<String>,
}

impl Identity {
    pub(crate) fn new(config: &UpstreamConfig) -> Self {
        let secret = &config.client_secret;
        Self {
            issuer: config.issuer.trim_end_matches('/').to_owned(),
            client_id: config.client_id.clone(),
            client_secret: (!secret.expose_secret().is_empty()).then(|| secret.clone()),
            resource: config.resource.clone(),
            audience: config.audience.clone(),
            scope: config.scope.clone(),
        }
    }

    /// Reads `{issuer}/.well-known/openid-configuration` and checks that it is the
    /// configured issuer's own.
    pub(crate) async fn discover(
        &self,
        http: &reqwest::Client,
    ) -> Result<Discovery, UpstreamError> {
        let url = format!("{}/.well-known/openid-configuration", self.issuer);
        let response = http
            .get(&url)
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&e, &url, UpstreamError::IdentityUnavailable))?;
        let status = response.status();
        if !status.is_success() {
            return Err(UpstreamError::IdentityUnavailable(format!(
                "{url} answered {status}"
            )));
        }
        let document: Discovery = serde_json::from_slice(&read_capped(response, &url).await?)
            .map_err(|e| {
                UpstreamError::IdentityUnavailable(format!("{url}: unreadable document: {e}"))
            })?;
        // A document naming another issuer means a misconfiguration or a mix-up attack;
        // either way the BFF must not send its secret to that token endpoint.
        if document.issuer.trim_end_matches('/') != self.issuer {
            return Err(UpstreamError::BadGateway(format!(
                "{url} names the issuer {:?}, not the configured one",
                document.issuer
            )));
        }
        Ok(document)
    }

    /// The token endpoint a discovery document names.
    pub(crate) fn token_url(discovery: &Discovery) -> Result<TokenUrl, UpstreamError> {
        TokenUrl::new(discovery.token_endpoint.clone())
            .map_err(|e| UpstreamError::BadGateway(format!("invalid token_endpoint: {e}")))
    }

    /// The authorization endpoint a discovery document names, for `login`.
    pub(crate) fn auth_url(discovery: &Discovery) -> anyhow::Result<AuthUrl> {
        let endpoint = discovery.authorization_endpoint.clone().ok_or_else(|| {
            anyhow::anyhow!("the discovery document has no authorization_endpoint")
        })?;
        Ok(AuthUrl::new(endpoint)?)
    }

    /// The BFF's client at `token_url`, authenticating with HTTP Basic when it has a secret.
    pub(crate) fn client(&self, token_url: TokenUrl) -> TokenClient {
        let client =
            BasicClient::new(ClientId::new(self.client_id.clone())).set_token_uri(token_url);
        match &self.client_secret {
            Some(secret) => {
                client.set_client_secret(ClientSecret::new(secret.expose_secret().to_owned()))
            }
            None => client,
        }
    }

    /// The target parameters sent with every grant request and the authorization request:
    /// without them a provider may issue a token for another audience, or an opaque one.
    pub(crate) fn targets(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let resource = self.resource.as_deref().map(|value| ("resource", value));
        let audience = self.audience.as_deref().map(|value| ("audience", value));
        resource.into_iter().chain(audience)
    }

    /// The configured scopes, one by one.
    pub(crate) fn scopes(&self) -> impl Iterator<Item = oauth2::Scope> {
        self.scope
            .iter()
            .flat_map(|scope| scope.split_whitespace())
            .map(|scope| oauth2::Scope::new(scope.to_owned()))
    }
}

/// Whether the provider refused the grant itself (RFC 6749 §5.2 `invalid_grant`): the
/// refresh token is expired, revoked or was already used.
pub(crate) fn is_invalid_grant(error: &GrantError) -> bool {
    matches!(error, RequestTokenError::ServerResponse(e)
        if *e.error() == BasicErrorResponseType::InvalidGrant)
}

/// Maps a failed grant request to what the BFF reports. Nothing of the response body is
/// kept: an unreadable answer may still hold a token.
pub(crate) fn grant_error(error: GrantError) -> UpstreamError {
    match error {
        RequestTokenError::Request(HttpClientError::Reqwest(e)) => {
            transport_error(&e, "token endpoint", UpstreamError::IdentityUnavailable)
        }
        RequestTokenError::ServerResponse(e) => UpstreamError::BadGateway(format!(
            "the token endpoint refused the BFF's client: {}",
            e.error()
        )),
        RequestTokenError::Parse(..) => {
            UpstreamError::IdentityUnavailable("unreadable token endpoint response".into())
        }
        other => UpstreamError::IdentityUnavailable(format!("token request: {other}")),
    }
}
