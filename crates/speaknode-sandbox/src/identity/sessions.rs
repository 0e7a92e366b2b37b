//! The realm's memory of logins: logins in progress, authorization codes and login sessions
//! with their refresh-token chains.
//!
//! A login session here is one grant: one user, one client, from one login. Keycloak's
//! user session can span clients through its SSO cookie; the sandbox keeps no browser
//! session, so each login makes its own. Times are Unix seconds, passed in, so the rules
//! can be tested without waiting.

use std::{
    collections::HashMap,
    sync::{Mutex, PoisonError},
};

use sha2::{Digest as _, Sha256};
use uuid::Uuid;

/// How long an authorization code can be exchanged (Keycloak's default "Client login
/// timeout" is 60 s).
pub(crate) const CODE_TTL_SECS: u64 = 60;

/// How long the login form of an authorization request stays usable (Keycloak's default
/// "Login timeout", 30 min).
pub(crate) const LOGIN_TTL_SECS: u64 = 1800;

/// A checked authorization request, waiting for the user to sign in.
#[derive(Clone, Debug)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The S256 `code_challenge`: base64url of the SHA-256 of the verifier.
    pub code_challenge: String,
    pub scope: String,
    pub nonce: Option<String>,
}

/// Who signed in, to which client, with what: what every token of a session is made from.
#[derive(Clone, Debug)]
pub(crate) struct Grant {
    /// The session id: `sid` in tokens, `session_state` in responses.
    pub sid: String,
    pub user_id: Uuid,
    pub username: String,
    pub space_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub nonce: Option<String>,
    pub auth_time: u64,
}

/// A session's grant with the refresh token that may be used next.
#[derive(Clone, Debug)]
pub(crate) struct Refresh {
    pub grant: Grant,
    /// The `jti` of the session's one valid refresh token.
    pub jti: String,
    /// When the session ends unless refreshed before; the refresh token's `exp`.
    pub idle_until: u64,
}

/// Why a code or refresh token was refused. The variants map onto Keycloak's
/// `error_description`s of `invalid_grant`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Unknown, or used before (which has revoked its session).
    CodeNotValid,
    CodeExpired,
    /// The session ended: revoked, idle too long, or never there.
    SessionNotActive,
    /// A refresh token that was already exchanged: the session is revoked.
    RefreshTokenReused,
    /// The request broke a binding the caller checks (client, redirect URI, verifier).
    Other(String),
}

struct Code {
    request: AuthRequest,
    sid: String,
    expires: u64,
    used: bool,
}

struct Session {
    grant: Grant,
    /// `None` until the session's code has been exchanged.
    refresh_jti: Option<String>,
    idle_until: u64,
}

#[derive(Default)]
struct State {
    logins: HashMap<String, (AuthRequest, u64)>,
    /// Keyed by the code's SHA-256, so that a hash map's timing says nothing about codes.
    codes: HashMap<[u8; 32], Code>,
    sessions: HashMap<String, Session>,
}

impl State {
    /// Forgets what has expired, so memory stays bounded by what is alive. Codes are kept
    /// for another lifetime past their expiry, so that a late or second use can still be
    /// told apart from a code that never was.
    fn purge(&mut self, now: u64) {
        self.logins.retain(|_, (_, expires)| *expires > now);
        self.codes
            .retain(|_, code| code.expires.saturating_add(CODE_TTL_SECS) > now);
        self.sessions.retain(|_, session| session.idle_until > now);
    }
}

#[derive(Default)]
pub(crate) struct Sessions {
    // A std lock is enough: it is never held across an await, and every critical section
    // is a few map operations. A panic inside cannot leave a half-made entry behind, so a
    // poisoned lock is still usable.
    state: Mutex<State>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keeps `request` under `login_id` until the user signs in or [`LOGIN_TTL_SECS`] pass.
    pub(crate) fn begin_login(&self, login_id: String, request: AuthRequest, now: u64) {
        let mut state = self.lock();
        state.purge(now);
        let expires = now.saturating_add(LOGIN_TTL_SECS);
        state.logins.insert(login_id, (request, expires));
    }

    /// The request a login form belongs to, if it is still waiting.
    pub(crate) fn login(&self, login_id: &str, now: u64) -> Option<AuthRequest> {
        let state = self.lock();
        let (request, expires) = state.logins.get(login_id)?;
        (*expires > now).then(|| request.clone())
    }

    /// Ends the login `login_id` by starting a session for `grant` (whose client, scope and
    /// nonce come from the request) and issuing `code` for it. `None` if the login is gone.
    pub(crate) fn finish_login(
        &self,
        login_id: &str,
        grant: impl FnOnce(&AuthRequest) -> Grant,
        code: &str,
        idle_secs: u64,
        now: u64,
    ) -> Option<(AuthRequest, Grant)> {
        let mut state = self.lock();
        state.purge(now);
        let (request, _) = state.logins.remove(login_id)?;
        let grant = grant(&request);
        state.codes.insert(
            digest(code),
            Code {
                request: request.clone(),
                sid: grant.sid.clone(),
                expires: now.saturating_add(CODE_TTL_SECS),
                used: false,
            },
        );
        state.sessions.insert(
            grant.sid.clone(),
            Session {
                grant: grant.clone(),
                refresh_jti: None,
                idle_until: now.saturating_add(idle_secs),
            },
        );
        Some((request, grant))
    }

    /// Exchanges `code` once. `check` sees the authorization request the code answered and
    /// may refuse; the code is spent either way, as in Keycloak, so a wrong verifier cannot
    /// be followed by another guess. A second use revokes the session the code started
    /// (RFC 6749 §4.1.2). On success the session's first refresh token is `jti`.
    pub(crate) fn redeem_code(
        &self,
        code: &str,
        check: impl FnOnce(&AuthRequest) -> Result<(), String>,
        jti: String,
        idle_secs: u64,
        now: u64,
    ) -> Result<Refresh, Refusal> {
        let mut guard = self.lock();
        // Through a plain reference the code and the sessions are disjoint borrows.
        let state = &mut *guard;
        state.purge(now);
        let entry = state
            .codes
            .get_mut(&digest(code))
            .ok_or(Refusal::CodeNotValid)?;
        if entry.used {
            let sid = entry.sid.clone();
            state.sessions.remove(&sid);
            tracing::warn!(sid = %sid, "authorization code used twice; session revoked");
            return Err(Refusal::CodeNotValid);
        }
        entry.used = true;
        if entry.expires <= now {
            return Err(Refusal::CodeExpired);
        }
        check(&entry.request).map_err(Refusal::Other)?;
        let sid = entry.sid.clone();
        let session = state
            .sessions
            .get_mut(&sid)
            .ok_or(Refusal::SessionNotActive)?;
        Ok(session.rotate(jti, idle_secs, now))
    }

    /// Exchanges the refresh token `jti` of session `sid` for the next one, `next_jti`.
    ///
    /// Only the newest refresh token of a session is valid (Keycloak's "Revoke Refresh
    /// Token" with "Refresh Token Max Reuse" 0). Presenting an older one means two parties
    /// hold the chain, so the whole session is revoked and its newest token dies too.
    pub(crate) fn refresh(
        &self,
        sid: &str,
        jti: &str,
        next_jti: String,
        idle_secs: u64,
        now: u64,
    ) -> Result<Refresh, Refusal> {
        let mut state = self.lock();
        state.purge(now);
        let session = state
            .sessions
            .get_mut(sid)
            .ok_or(Refusal::SessionNotActive)?;
        if session.refresh_jti.as_deref() != Some(jti) {
            state.sessions.remove(sid);
            tracing::warn!(sid = %sid, "refresh token reused; session revoked");
            return Err(Refusal::RefreshTokenReused);
        }
        Ok(session.rotate(next_jti, idle_secs, now))
    }
}

impl Session {
    fn rotate(&mut self, jti: String, idle_secs: u64, now: u64) -> Refresh {
        self.refresh_jti = Some(jti.clone());
        self.idle_until = now.saturating_add(idle_secs);
        Refresh {
            grant: self.grant.clone(),
            jti,
            idle_until: self.idle_until,
        }
    }
}

fn digest(code: &str) -> [u8; 32] {
    Sha256::digest(code.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: u64 = 1800;

    fn request() -> AuthRequest {
        AuthRequest {
            client_id: "spa".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            state: None,
            code_challenge: "challenge".into(),
            scope: "profile email".into(),
            nonce: None,
        }
    }

    fn grant(request: &AuthRequest) -> Grant {
        Grant {
            sid: "sid".into(),
            user_id: Uuid::nil(),
            username: "alice".into(),
            space_id: Uuid::nil(),
            client_id: request.client_id.clone(),
            scope: request.scope.clone(),
            nonce: request.nonce.clone(),
            auth_time: 0,
        }
    }

    /// A session whose code was issued at `now`.
    fn logged_in(now: u64) -> Sessions {
        let sessions = Sessions::default();
        sessions.begin_login("login".into(), request(), now);
        assert!(
            sessions
                .finish_login("login", grant, "code", IDLE, now)
                .is_some()
        );
        sessions
    }

    fn redeem(sessions: &Sessions, jti: &str, now: u64) -> Result<Refresh, Refusal> {
        sessions.redeem_code("code", |_| Ok(()), jti.into(), IDLE, now)
    }

    #[test]
    fn a_login_finishes_once() {
        let sessions = logged_in(0);
        assert!(sessions.login("login", 0).is_none());
        assert!(
            sessions
                .finish_login("login", grant, "other", IDLE, 0)
                .is_none()
        );
    }

    #[test]
    fn a_login_form_expires() {
        let sessions = Sessions::default();
        sessions.begin_login("login".into(), request(), 0);
        assert!(sessions.login("login", LOGIN_TTL_SECS - 1).is_some());
        assert!(sessions.login("login", LOGIN_TTL_SECS).is_none());
    }

    #[test]
    fn a_code_is_exchanged_once_and_its_reuse_revokes_the_session() {
        let sessions = logged_in(0);
        let first = redeem(&sessions, "r1", 1).expect("first use");
        assert_eq!((first.jti.as_str(), first.idle_until), ("r1", 1 + IDLE));
        assert_eq!(
            redeem(&sessions, "r2", 2).err(),
            Some(Refusal::CodeNotValid)
        );
        let refresh = sessions.refresh("sid", "r1", "r3".into(), IDLE, 3);
        assert_eq!(refresh.err(), Some(Refusal::SessionNotActive));
    }

    #[test]
    fn a_refused_check_spends_the_code() {
        let sessions = logged_in(0);
        let wrong = sessions.redeem_code("code", |_| Err("no".into()), "r1".into(), IDLE, 1);
        assert_eq!(wrong.err(), Some(Refusal::Other("no".into())));
        assert_eq!(
            redeem(&sessions, "r1", 1).err(),
            Some(Refusal::CodeNotValid)
        );
    }

    #[test]
    fn a_code_expires_after_a_minute() {
        let sessions = logged_in(0);
        let late = redeem(&sessions, "r1", CODE_TTL_SECS);
        assert_eq!(late.err(), Some(Refusal::CodeExpired));
        let forgotten = redeem(&logged_in(0), "r1", 2 * CODE_TTL_SECS);
        assert_eq!(forgotten.err(), Some(Refusal::CodeNotValid));
        assert!(redeem(&logged_in(0), "r1", CODE_TTL_SECS - 1).is_ok());
    }

    #[test]
    fn refresh_tokens_rotate_and_reuse_revokes_the_whole_session() {
        let sessions = logged_in(0);
        redeem(&sessions, "r1", 1).expect("code");
        let next = sessions.refresh("sid", "r1", "r2".into(), IDLE, 10);
        assert_eq!(next.map(|r| r.idle_until).ok(), Some(10 + IDLE));
        let reused = sessions.refresh("sid", "r1", "r3".into(), IDLE, 11);
        assert_eq!(reused.err(), Some(Refusal::RefreshTokenReused));
        let newest = sessions.refresh("sid", "r2", "r4".into(), IDLE, 12);
        assert_eq!(newest.err(), Some(Refusal::SessionNotActive));
    }

    #[test]
    fn a_session_ends_when_idle_too_long() {
        let sessions = logged_in(0);
        redeem(&sessions, "r1", 0).expect("code");
        let late = sessions.refresh("sid", "r1", "r2".into(), IDLE, IDLE);
        assert_eq!(late.err(), Some(Refusal::SessionNotActive));
    }
}
