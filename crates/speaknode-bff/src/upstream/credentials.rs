//! The BFF's platform access token: obtained with `client_credentials` or with a stored,
//! rotating refresh token, cached, renewed shortly before it expires, one request at a time.
//!
//! Refresh-token mode follows three rules, because a rotated refresh token that is lost is
//! a grant that is lost (research/bff-security.md §1.5):
//!
//! - **Single flight.** One refresh runs at a time; requests that waited for it share its
//!   outcome.
//! - **Persist before use.** The rotated refresh token is written durably before the new
//!   access token is handed out. If the write fails, the request fails; the new token stays
//!   in memory, so the next attempt presents it and writes again.
//! - **`invalid_grant` stops.** The provider refused the grant (expired, revoked, or reuse
//!   detected): the client enters a "needs login" state, logs that an operator must run
//!   `speaknode-bff login`, and makes no token request until the file changes.
//! - **The file wins.** A file replaced by `login` while the BFF runs is read at the next
//!   refresh, so re-authorising (as the same or another user) needs no restart.
//!
//! One BFF instance per refresh token file: two instances would consume each other's
//! rotations and end in reuse detection.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use oauth2::basic::BasicTokenResponse;
use oauth2::{RefreshToken, TokenResponse, TokenUrl};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::UpstreamError;
use super::oidc::{Identity, grant_error, is_invalid_grant};
use super::token_file::{FileStamp, Owner, TokenFile};
use crate::config::{UpstreamConfig, UpstreamMode};

/// Lifetime assumed when a token response has no `expires_in`.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Longer lifetimes are cut to this, so an absurd `expires_in` neither overflows the
/// clock arithmetic nor pins a token for days.
const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// A token is renewed this long before it expires, or 10 % of its lifetime if shorter…
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// …but at least this long: providers count `exp` and `expires_in` in whole seconds and
/// round down, so a token may expire up to a second before `expires_in` says.
const MIN_REFRESH_MARGIN: Duration = Duration::from_secs(1);

/// The platform access token of one BFF, and how to get a new one.
pub(crate) struct Credentials {
    http: reqwest::Client,
    identity: Identity,
    grant: Grant,
    state: Mutex<State>,
    /// Finished attempts, read before waiting for the lock: a request that sees it change
    /// while it waited knows an attempt ran for it.
    attempts: AtomicU64,
}

enum Grant {
    ClientCredentials,
    RefreshToken(TokenFile),
}

#[derive(Default)]
struct State {
    token_url: Option<TokenUrl>,
    current: Option<CachedToken>,
    last_error: Option<UpstreamError>,
    refresh: Refresh,
}

struct CachedToken {
    secret: SecretString,
    refresh_at: Instant,
}

/// Where refresh-token mode stands.
#[derive(Default)]
enum Refresh {
    /// The file has not been read yet.
    #[default]
    Unread,
    /// The newest refresh token the provider issued, and the stamp of the file as the
    /// BFF last read or wrote it.
    Held {
        token: SecretString,
        stamp: Option<FileStamp>,
    },
    /// The provider refused the grant or the file held none: nothing is tried until the
    /// file's stamp differs from this one.
    NeedsLogin { stamp: Option<FileStamp> },
}

impl Credentials {
    pub(crate) fn new(config: &UpstreamConfig, http: reqwest::Client) -> Self {
        let grant = match (config.mode, &config.refresh_token_file) {
            (UpstreamMode::RefreshToken, Some(path)) => {
                if !path.exists() {
                    tracing::warn!(
                        path = %path.display(),
                        "the refresh token file does not exist yet; run `speaknode-bff login \
                         --config <this config>` to authorise the BFF"
                    );
                }
                Grant::RefreshToken(TokenFile::new(path.clone()))
            }
            // `Config::validate` refuses refresh-token mode without a file.
            _ => Grant::ClientCredentials,
        };
        Self {
            http,
            identity: Identity::new(config),
            grant,
            state: Mutex::default(),
            attempts: AtomicU64::new(0),
        }
    }

    /// The current access token, fetched once for all concurrent callers when missing or
    /// about to expire.
    pub(crate) async fn access_token(&self) -> Result<SecretString, UpstreamError> {
        let seen = self.attempts.load(Ordering::Acquire);
        let mut state = self.state.lock().await;
        if let Some(token) = &state.current
            && Instant::now() < token.refresh_at
        {
            return Ok(token.secret.clone());
        }
        if self.attempts.load(Ordering::Acquire) != seen
            && let Some(error) = &state.last_error
        {
            return Err(error.clone());
        }
        let result = self.fetch(&mut state).await;
        state.last_error = result.as_ref().err().cloned();
        self.attempts.fetch_add(1, Ordering::Release);
        result
    }

    /// Token fetches attempted so far, successful or not (for metrics).
    pub(crate) fn fetch_attempts(&self) -> u64 {
        self.attempts.load(Ordering::Acquire)
    }

    /// Drops the cached token if it is still `stale`, so a token another request has just
    /// fetched survives.
    pub(crate) async fn invalidate(&self, stale: &SecretString) {
        let mut state = self.state.lock().await;
        if state
            .current
            .as_ref()
            .is_some_and(|token| token.secret.expose_secret() == stale.expose_secret())
        {
            state.current = None;
        }
    }

    async fn fetch(&self, state: &mut State) -> Result<SecretString, UpstreamError> {
        state.current = None;
        // In the needs-login state even discovery waits: no request of any kind goes to the
        // provider until an operator has acted.
        if let Grant::RefreshToken(file) = &self.grant {
            self.load_refresh_token(file, &mut state.refresh).await?;
        }
        let token_url = match &state.token_url {
            Some(url) => url.clone(),
            None => {
                let discovery = self.identity.discover(&self.http).await?;
                state
                    .token_url
                    .insert(Identity::token_url(&discovery)?)
                    .clone()
            }
        };
        let started = Instant::now();
        let response = match &self.grant {
            Grant::ClientCredentials => self.client_credentials(token_url).await?,
            Grant::RefreshToken(file) => self.refresh(file, token_url, &mut state.refresh).await?,
        };
        let lifetime = response
            .expires_in()
            .unwrap_or(DEFAULT_TOKEN_LIFETIME)
            .min(MAX_TOKEN_LIFETIME);
        let margin = REFRESH_MARGIN.min((lifetime / 10).max(MIN_REFRESH_MARGIN));
        let secret = SecretString::from(response.access_token().secret().as_str());
        state.current = Some(CachedToken {
            secret: secret.clone(),
            refresh_at: started + lifetime.saturating_sub(margin),
        });
        tracing::debug!(
            lifetime_secs = lifetime.as_secs(),
            "fetched a platform access token"
        );
        Ok(secret)
    }

    async fn client_credentials(
        &self,
        token_url: TokenUrl,
    ) -> Result<BasicTokenResponse, UpstreamError> {
        let client = self.identity.client(token_url);
        let mut request = client
            .exchange_client_credentials()
            .add_scopes(self.identity.scopes());
        for (name, value) in self.identity.targets() {
            request = request.add_extra_param(name, value);
        }
        request.request_async(&self.http).await.map_err(grant_error)
    }

    /// Makes sure `slot` holds a refresh token. The file is read at the first attempt, and
    /// again whenever it was replaced since the BFF last read or wrote it: a `login` while
    /// the BFF runs takes effect at the next refresh, and one in the needs-login state
    /// ends that state.
    async fn load_refresh_token(
        &self,
        file: &TokenFile,
        slot: &mut Refresh,
    ) -> Result<(), UpstreamError> {
        let current = file.stamp().await;
        match slot {
            // A file that vanished is recreated by the next rotation; the token in memory
            // still works.
            Refresh::Held { stamp, .. } if current.is_none() || current == *stamp => {
                return Ok(());
            }
            Refresh::NeedsLogin { stamp } if current == *stamp => {
                return Err(UpstreamError::NeedsLogin);
            }
            Refresh::Unread => {}
            Refresh::Held { .. } | Refresh::NeedsLogin { .. } => {
                tracing::info!(path = %file.path().display(), "the refresh token file was replaced; using its token");
            }
        }
        match file.read(self.owner()).await {
            Ok((token, stamp)) => {
                *slot = Refresh::Held {
                    token,
                    stamp: Some(stamp),
                };
                Ok(())
            }
            Err(error) => {
                if let Refresh::Held { stamp, .. } = slot {
                    tracing::warn!(
                        path = %file.path().display(),
                        "cannot use the replaced refresh token file ({error:#}); keeping the \
                         refresh token the BFF holds"
                    );
                    *stamp = current;
                    return Ok(());
                }
                tracing::error!(
                    path = %file.path().display(),
                    "cannot use the refresh token file ({error:#}); run `speaknode-bff login \
                     --config <this config>` to authorise the BFF"
                );
                *slot = Refresh::NeedsLogin { stamp: current };
                Err(UpstreamError::NeedsLogin)
            }
        }
    }

    /// One refresh-token grant. A rotated refresh token is on disk before this returns the
    /// response whose access token the caller will use.
    async fn refresh(
        &self,
        file: &TokenFile,
        token_url: TokenUrl,
        slot: &mut Refresh,
    ) -> Result<BasicTokenResponse, UpstreamError> {
        let Refresh::Held { token, stamp } = slot else {
            return Err(UpstreamError::NeedsLogin);
        };
        let presented = RefreshToken::new(token.expose_secret().to_owned());
        let client = self.identity.client(token_url);
        let mut request = client.exchange_refresh_token(&presented);
        for (name, value) in self.identity.targets() {
            request = request.add_extra_param(name, value);
        }
        let response = match request.request_async(&self.http).await {
            Ok(response) => response,
            Err(error) if is_invalid_grant(&error) => {
                tracing::error!(
                    path = %file.path().display(),
                    "the identity provider refused the BFF's refresh token (invalid_grant: \
                     expired, revoked, or reused after a lost rotation); platform calls fail \
                     until an operator runs `speaknode-bff login --config <this config>`, \
                     which the BFF picks up without a restart"
                );
                *slot = Refresh::NeedsLogin { stamp: *stamp };
                return Err(UpstreamError::NeedsLogin);
            }
            Err(error) => return Err(grant_error(error)),
        };
        if let Some(rotated) = response.refresh_token() {
            // The provider has consumed the presented token: from here on only the rotated
            // one works, so it replaces the old one in memory even if the write fails.
            let rotated = SecretString::from(rotated.secret().as_str());
            *token = rotated.clone();
            let written = file.write(self.owner(), &rotated).await.map_err(|error| {
                tracing::error!(
                    path = %file.path().display(),
                    "cannot store the rotated refresh token ({error}); the BFF keeps it in \
                     memory, but a restart now would need `speaknode-bff login`"
                );
                UpstreamError::IdentityUnavailable(format!(
                    "cannot store the rotated refresh token in {}: {error}",
                    file.path().display()
                ))
            })?;
            *stamp = Some(written);
        }
        Ok(response)
    }

    /// Makes the next write of the refresh token file fail before it writes anything.
    #[cfg(test)]
    pub(crate) fn crash_before_next_write(&self) {
        if let Grant::RefreshToken(file) = &self.grant {
            file.crash_before_write.store(true, Ordering::SeqCst);
        }
    }

    fn owner(&self) -> Owner<'_> {
        Owner {
            issuer: &self.identity.issuer,
            client_id: &self.identity.client_id,
        }
    }
}
