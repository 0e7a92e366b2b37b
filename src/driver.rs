//! Drives one conversation: get a token, start (or resume the stored conversation), follow
//! its live event stream, renew its token before expiry, and carry out the visitor's end and
//! rating, writing every step into the [`Session`] signal the panel renders.
//!
//! Every event of the stream is the whole conversation, so a dropped connection that comes
//! back, or a reload, shows exactly the transcript the BFF has: no turn twice, none missing.
//! All work runs in tasks the [`Driver`] can abort, which `destroy` does: no timer, request
//! or stream outlives the widget.
//!
//! A start (or a resume) that brings a LiveKit join grant also joins the conversation's
//! call; `call.rs` holds that part.

mod call;

pub use call::{CallSignals, VoiceFactory};

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_util::StreamExt;
use futures_util::future::{AbortHandle, abortable};
use leptos::prelude::*;
use speaknode_api::{
    ConversationStatus, EndReason, ErrorCode, FeedbackRequest, Rating, TokenGrant,
};

use crate::Mode;
use crate::client::{Backend, ClientError, MintReason, StreamItem};
use crate::resume::{self, Saved};
use crate::session::{Feedback, Phase, Session, WidgetError};

/// How the driver paces its retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Base delay before reopening a stream that failed; it doubles with each failure.
    pub retry_millis: u32,
    /// Consecutive failures to reach the BFF tolerated before the widget shows an error.
    pub max_network_failures: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            retry_millis: 1000,
            max_network_failures: 4,
        }
    }
}

/// Renew a token this long before it expires (or half its lifetime before, if it lives
/// less than twice as long), so no call races its expiry.
const RENEW_MARGIN_SECS: u64 = 60;

/// The conversation the widget holds and the token bound to it. Times are on this browser's
/// clock, whatever the server's says: see [`Credentials::received`].
#[derive(Debug, Clone, PartialEq, Eq)]
struct Credentials {
    id: String,
    token: String,
    /// When the token expires, in seconds since the Unix epoch on the local clock.
    expires_at: u64,
    /// When to renew it, on the same clock.
    renew_at: u64,
}

impl Credentials {
    /// A token just received. Its lifetime comes from its own `iat` and `exp` claims where
    /// it has them, so a visitor's clock that is minutes off neither renews in a loop nor
    /// too late; the server's absolute `expires_at` is the fallback.
    fn received(id: String, token: String, server_expires_at: u64, now: u64) -> Self {
        let lifetime =
            token_lifetime(&token).unwrap_or_else(|| server_expires_at.saturating_sub(now));
        Self::expiring(id, token, now + lifetime, now)
    }

    /// A token that expires at `expires_at` on the local clock.
    fn expiring(id: String, token: String, expires_at: u64, now: u64) -> Self {
        let lifetime = expires_at.saturating_sub(now);
        let margin = RENEW_MARGIN_SECS.min(lifetime / 2);
        Self {
            id,
            token,
            expires_at,
            // At least a second ahead, so renewals can never follow each other at once.
            renew_at: now + (lifetime - margin).max(1),
        }
    }
}

/// `exp - iat` of a JWT, read without verifying (the BFF verifies; this only times the
/// renewal). `None` for anything that is not a JWT with both claims.
fn token_lifetime(token: &str) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Times {
        iat: u64,
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let mut base64 = payload.replace('-', "+").replace('_', "/");
    while base64.len() % 4 != 0 {
        base64.push('=');
    }
    let json = web_sys::window()?.atob(&base64).ok()?;
    let times: Times = serde_json::from_str(&json).ok()?;
    times.exp.checked_sub(times.iat)
}

/// Everything the widget's tasks share. Cheap to clone; all clones are one driver.
#[derive(Clone)]
pub struct Driver {
    backend: Rc<dyn Backend>,
    agent_id: Rc<str>,
    session: RwSignal<Session>,
    open: RwSignal<bool>,
    pacing: Pacing,
    credentials: Rc<RefCell<Option<Credentials>>>,
    /// Starting, catching up, following and renewing: replaced by the next start.
    tasks: Rc<RefCell<Vec<AbortHandle>>>,
    /// Ending and rating: they run to their end unless the widget is destroyed.
    actions: Rc<RefCell<Vec<AbortHandle>>>,
    /// The page asked to end while the conversation was still being started or caught up
    /// with: done as soon as it runs.
    end_requested: Rc<Cell<bool>>,
    /// The conversation's call, if it has one ([`Driver::with_voice`] makes calls possible).
    voice: Rc<call::Voice>,
}

impl Driver {
    pub fn new(
        backend: Rc<dyn Backend>,
        agent_id: &str,
        session: RwSignal<Session>,
        open: RwSignal<bool>,
        pacing: Pacing,
    ) -> Self {
        Self {
            backend,
            agent_id: agent_id.into(),
            session,
            open,
            pacing,
            credentials: Rc::default(),
            tasks: Rc::default(),
            actions: Rc::default(),
            end_requested: Rc::default(),
            voice: Rc::new(call::Voice::new(None, Mode::default())),
        }
    }

    /// Picks up the conversation stored by an earlier page of this tab, if its token still
    /// holds, and reopens the panel if it was open.
    pub fn resume_stored(&self) {
        let Some(saved) = resume::load(&self.agent_id, self.backend.now()) else {
            return;
        };
        *self.credentials.borrow_mut() = Some(Credentials::expiring(
            saved.conversation_id,
            saved.token,
            saved.expires_at,
            self.backend.now(),
        ));
        // Busy at once, so an `open()` or `start()` right after mounting resumes this
        // conversation instead of starting another.
        self.update(|s| {
            s.connecting();
            s.agent_name = saved.agent_name;
        });
        self.resume_call(saved.call);
        if saved.open {
            let _ = self.open.try_set(true);
        }
        self.spawn(self.clone().catch_up());
    }

    /// Starts a conversation, unless one is being started or is running. After a failure
    /// with a conversation still running, it catches up with that one instead of starting
    /// another.
    pub fn start(&self) {
        let Some((busy, failed)) = self
            .session
            .try_with_untracked(|s| (s.is_busy(), matches!(s.phase, Phase::Error(_))))
        else {
            return;
        };
        if busy {
            return;
        }
        self.abort_tasks();
        let had_call = self.has_call();
        self.reset_call();
        // Synchronously, inside the click that got here: a context made later cannot play.
        self.prime_audio();
        if failed && self.credentials.borrow().is_some() {
            // Catching up with the same conversation joins its call again.
            self.resume_call(had_call);
            self.spawn(self.clone().catch_up());
        } else {
            let reason = if failed {
                MintReason::Retry
            } else {
                MintReason::Start
            };
            self.spawn(self.clone().begin(reason));
        }
    }

    /// Starts a conversation if the widget has never talked yet (opening an idle widget
    /// means "talk").
    pub fn start_if_idle(&self) {
        if self.session.try_with_untracked(|s| s.phase == Phase::Idle) == Some(true) {
            self.start();
        }
    }

    /// The visitor hangs up.
    pub fn end(&self) {
        if self
            .session
            .try_with_untracked(|s| s.phase == Phase::Connecting)
            == Some(true)
        {
            self.end_requested.set(true);
            return;
        }
        let Some(credentials) = self.credentials.borrow().clone() else {
            return;
        };
        if self.session.try_with_untracked(Session::can_end) != Some(true) {
            return;
        }
        self.update(|s| {
            s.ending = true;
            s.notice = None;
        });
        // Ending means stop talking now: the room is left at once, not once the BFF answers.
        self.feed(crate::voice::call::Input::Hangup);
        let driver = self.clone();
        self.spawn_action(async move {
            let answer = driver
                .backend
                .end(&credentials.token, &credentials.id)
                .await;
            match answer {
                Ok(view) => {
                    driver.update(|s| {
                        s.apply(&view);
                    });
                    driver.forget_if_final();
                }
                // Someone (the agent, the platform) ended it first: the stream says how.
                Err(ClientError::Http {
                    problem: Some(problem),
                    ..
                }) if problem.code == ErrorCode::ConversationEnded => {}
                Err(error) => {
                    driver.update(|s| {
                        s.ending = false;
                        s.notice = Some(error.into());
                    });
                }
            }
        });
    }

    /// The visitor rates the conversation; a later rating replaces an earlier one.
    pub fn feedback(&self, rating: Rating, comment: Option<String>) {
        let Some(id) = self
            .session
            .try_with_untracked(|s| s.conversation_id.clone())
            .flatten()
        else {
            return;
        };
        let Some(token) = self.feedback_token(&id) else {
            return;
        };
        if self.session.try_with_untracked(Session::can_rate) != Some(true) {
            return;
        }
        self.update(|s| {
            s.feedback = Feedback::Sending(rating);
            s.notice = None;
        });
        let request = FeedbackRequest {
            rating,
            comment: comment
                .map(|text| text.trim().to_owned())
                .filter(|text| !text.is_empty()),
        };
        let driver = self.clone();
        self.spawn_action(async move {
            let answer = driver.backend.feedback(&token, &id, &request).await;
            driver.update(|s| match answer {
                Ok(()) => s.feedback = Feedback::Sent(rating),
                Err(error) => {
                    s.feedback = Feedback::NotSent;
                    s.notice = Some(error.into());
                }
            });
        });
    }

    /// Remembers whether the panel is open, for the next page of this tab.
    pub fn remember_open(&self) {
        self.remember();
    }

    /// Stops every task: timers are cleared, requests aborted, streams closed.
    pub fn stop(&self) {
        self.abort_tasks();
        self.stop_call();
        for action in self.actions.borrow_mut().drain(..) {
            action.abort();
        }
    }

    fn abort_tasks(&self) {
        for task in self.tasks.borrow_mut().drain(..) {
            task.abort();
        }
    }

    fn spawn(&self, task: impl Future<Output = ()> + 'static) {
        Self::spawn_into(&self.tasks, task);
    }

    fn spawn_action(&self, action: impl Future<Output = ()> + 'static) {
        Self::spawn_into(&self.actions, action);
    }

    /// Runs `task` on the page's event loop, abortable through `list`; a finished task
    /// marks its handle aborted, so the list keeps only live ones.
    fn spawn_into(list: &Rc<RefCell<Vec<AbortHandle>>>, task: impl Future<Output = ()> + 'static) {
        let (task, handle) = abortable(task);
        let mut tasks = list.borrow_mut();
        tasks.retain(|handle| !handle.is_aborted());
        tasks.push(handle.clone());
        leptos::task::spawn_local(async move {
            let _ = task.await;
            handle.abort();
        });
    }

    /// Applies `change` to the session; false once the widget is destroyed.
    fn update(&self, change: impl FnOnce(&mut Session)) -> bool {
        self.session.try_update(change).is_some()
    }

    fn fail(&self, error: WidgetError) {
        // An end asked for during a start that failed has nothing left to end; it must not
        // end the next conversation.
        self.end_requested.set(false);
        self.update(|s| s.fail(error));
        // An error replaces the conversation on screen; a microphone left open behind it
        // would be heard by nobody the visitor can see.
        self.call_over();
    }

    fn wants_updates(&self) -> bool {
        self.session.try_with_untracked(Session::wants_updates) == Some(true)
    }

    fn current(&self) -> Option<Credentials> {
        self.credentials.borrow().clone()
    }

    /// The token to rate with: the conversation's own, which outlives its end by its
    /// remaining lifetime.
    fn feedback_token(&self, id: &str) -> Option<String> {
        self.credentials
            .borrow()
            .as_ref()
            .filter(|c| c.id == id)
            .map(|c| c.token.clone())
    }

    fn remember(&self) {
        let Some(credentials) = self.current() else {
            return;
        };
        if !self.wants_updates() && !self.is_catching_up() {
            return;
        }
        resume::save(
            &self.agent_id,
            &Saved {
                conversation_id: credentials.id,
                token: credentials.token,
                expires_at: credentials.expires_at,
                open: self.open.try_get_untracked().unwrap_or(false),
                agent_name: self
                    .session
                    .try_with_untracked(|s| s.agent_name.clone())
                    .flatten(),
                call: self.has_call(),
            },
        );
    }

    fn is_catching_up(&self) -> bool {
        self.session
            .try_with_untracked(|s| s.phase == Phase::Connecting)
            == Some(true)
    }

    /// A finished conversation is not resumed on the next page; the token stays in memory
    /// for the rating.
    fn forget_if_final(&self) {
        let finished = self
            .session
            .try_with_untracked(|s| matches!(s.phase, Phase::Live(status) if status.is_final()));
        if finished == Some(true) {
            resume::clear(&self.agent_id);
            self.call_over();
        }
    }

    /// Mint → start → follow.
    async fn begin(self, reason: MintReason) {
        // The conversation held before is over or failed: a retry after this attempt must
        // start afresh, not catch up with it.
        *self.credentials.borrow_mut() = None;
        if !self.update(|s| {
            *s = Session {
                agent_name: s.agent_name.take(),
                ..Session::default()
            };
            s.connecting();
        }) {
            return;
        }
        let grant = match self.backend.mint(&self.agent_id, reason).await {
            Ok(grant) => grant,
            Err(error) => return self.fail(error.into()),
        };
        let name = Some(grant.agent.name).filter(|name| !name.trim().is_empty());
        if !self.update(|s| s.agent_name = name) {
            return;
        }
        let started = match self.backend.start(&grant.token).await {
            Ok(started) => started,
            Err(error) => return self.fail(error.into()),
        };
        *self.credentials.borrow_mut() = Some(Credentials::received(
            started.conversation.id.clone(),
            started.token,
            started.expires_at,
            self.backend.now(),
        ));
        if !self.update(|s| {
            s.apply(&started.conversation);
        }) {
            return;
        }
        match started.voice {
            Some(grant) if self.wants_updates() => self.start_call(grant),
            _ => self.no_call(),
        }
        self.remember();
        self.follow().await;
    }

    /// Reads the held conversation once over REST, then follows it.
    async fn catch_up(self) {
        let Some(credentials) = self.current() else {
            return;
        };
        if !self.update(Session::connecting) {
            return;
        }
        match self
            .backend
            .conversation(&credentials.token, &credentials.id)
            .await
        {
            Ok(view) => {
                if !self.update(|s| {
                    s.apply(&view);
                }) {
                    return;
                }
                self.forget_if_final();
                if view.status == ConversationStatus::Failed {
                    return self.fail(WidgetError::conversation_failed());
                }
                if self.wants_updates() && self.take_call_to_resume() {
                    self.spawn({
                        let driver = self.clone();
                        async move { driver.rejoin_call().await }
                    });
                } else if !self.has_call() {
                    self.no_call();
                }
                self.follow().await;
            }
            Err(ClientError::Network) => self.fail(WidgetError::unreachable()),
            Err(_) => {
                // The stored conversation is gone or its token no longer holds: nothing
                // to resume, so the widget is simply ready for a new conversation.
                resume::clear(&self.agent_id);
                *self.credentials.borrow_mut() = None;
                self.end_requested.set(false);
                self.update(|s| *s = Session::default());
            }
        }
    }

    /// Follows the conversation's event stream until the conversation is over, renewing
    /// its token on the side.
    async fn follow(&self) {
        self.spawn(self.clone().renew_before_expiry());
        if self.end_requested.take() {
            self.end();
        }
        let mut failures: u32 = 0;
        while self.wants_updates() {
            let Some(credentials) = self.current() else {
                return;
            };
            let mut stream = self.backend.events(&credentials.token, &credentials.id);
            let mut reopen_after = 0;
            while let Some(item) = stream.items.next().await {
                match item {
                    StreamItem::Open => {
                        failures = 0;
                        self.update(|s| s.reconnecting = false);
                    }
                    StreamItem::Reconnecting => {
                        self.update(|s| s.reconnecting = true);
                    }
                    StreamItem::Conversation(view) => {
                        failures = 0;
                        // An error shown meanwhile (a refused renewal) stands: the stream
                        // must not paint over it.
                        if self
                            .session
                            .try_with_untracked(|s| matches!(s.phase, Phase::Error(_)))
                            != Some(false)
                        {
                            return;
                        }
                        if !self.update(|s| {
                            s.reconnecting = false;
                            s.apply(&view);
                        }) {
                            return;
                        }
                        self.forget_if_final();
                        if view.status == ConversationStatus::Failed {
                            return self.fail(WidgetError::conversation_failed());
                        }
                    }
                    // The renewal task already holds a fresh token (or is about to fail).
                    StreamItem::End(EndReason::TokenExpired) => break,
                    // Ended conversations leave the loop; the pause only guards against a
                    // stream that ends while the conversation still runs.
                    StreamItem::End(
                        EndReason::ConversationEnded | EndReason::ShuttingDown | EndReason::Unknown,
                    ) => {
                        reopen_after = self.pacing.retry_millis;
                        break;
                    }
                    StreamItem::Failed => {
                        failures += 1;
                        reopen_after = self.check(failures).await.unwrap_or(0);
                        if !self.wants_updates() {
                            return;
                        }
                        break;
                    }
                }
            }
            drop(stream);
            if failures >= self.pacing.max_network_failures {
                return self.fail(WidgetError::unreachable());
            }
            if reopen_after > 0 {
                self.backend.wait(reopen_after).await;
            }
        }
    }

    /// After the stream failed: reads the conversation over REST to learn why (an expired
    /// token, an ended conversation, a BFF that is down). Returns how long to wait before
    /// reopening, or `None` when an error is shown.
    async fn check(&self, failures: u32) -> Option<u32> {
        let backoff = self
            .pacing
            .retry_millis
            .saturating_mul(1 << failures.min(5));
        let credentials = self.current()?;
        if self.backend.now() >= credentials.renew_at {
            match self.renew_once().await {
                Ok(()) => {}
                Err(ClientError::Network) => return Some(backoff),
                Err(error) => {
                    self.renewal_refused(error).await;
                    return None;
                }
            }
        }
        let credentials = self.current()?;
        match self
            .backend
            .conversation(&credentials.token, &credentials.id)
            .await
        {
            Ok(view) => {
                self.update(|s| {
                    s.apply(&view);
                });
                self.forget_if_final();
                if view.status == ConversationStatus::Failed {
                    self.fail(WidgetError::conversation_failed());
                    return None;
                }
                // Readable over REST but not as a stream: keep reading, at a slower pace.
                Some(backoff)
            }
            Err(ClientError::Network) => Some(backoff),
            Err(error) => {
                self.fail(error.into());
                None
            }
        }
    }

    /// Renews the conversation's token shortly before each expiry while it runs.
    async fn renew_before_expiry(self) {
        let mut failures = 0;
        while self.wants_updates() {
            let Some(credentials) = self.current() else {
                return;
            };
            let due = credentials.renew_at;
            let now = self.backend.now();
            if now < due {
                let millis = (due - now).saturating_mul(1000).min(u64::from(u32::MAX));
                self.backend.wait(millis as u32).await;
                continue;
            }
            match self.renew_once().await {
                Ok(()) => failures = 0,
                Err(ClientError::Network) if failures + 1 < self.pacing.max_network_failures => {
                    failures += 1;
                    let delay = self.pacing.retry_millis.saturating_mul(1 << failures);
                    self.backend.wait(delay).await;
                }
                Err(error) => {
                    if self.wants_updates() {
                        self.renewal_refused(error).await;
                    }
                    return;
                }
            }
        }
    }

    /// The BFF refused a renewal. It does that for a conversation that has just ended
    /// (`forbidden`, `conversation_ended`): a read with the token, still valid, shows the
    /// end. Anything else is an error.
    async fn renewal_refused(&self, error: ClientError) {
        let ended = matches!(
            &error,
            ClientError::Http { problem: Some(problem), .. }
                if matches!(problem.code, ErrorCode::Forbidden | ErrorCode::ConversationEnded)
        );
        if ended && let Some(credentials) = self.current() {
            let read = self
                .backend
                .conversation(&credentials.token, &credentials.id)
                .await;
            if let Ok(view) = read
                && view.status.is_final()
            {
                self.update(|s| {
                    s.apply(&view);
                });
                self.forget_if_final();
                if view.status == ConversationStatus::Failed {
                    self.fail(WidgetError::conversation_failed());
                }
                return;
            }
        }
        self.fail(error.into());
    }

    async fn renew_once(&self) -> Result<(), ClientError> {
        self.renew_token().await.map(drop)
    }

    /// Trades the conversation's token for a fresh one and keeps it; the whole answer is
    /// returned for the call's join grant. `None` when no conversation is held.
    async fn renew_token(&self) -> Result<Option<TokenGrant>, ClientError> {
        let Some(credentials) = self.current() else {
            return Ok(None);
        };
        let grant = self
            .backend
            .renew(&credentials.token, &credentials.id)
            .await?;
        let now = self.backend.now();
        if let Some(held) = self.credentials.borrow_mut().as_mut() {
            *held =
                Credentials::received(held.id.clone(), grant.token.clone(), grant.expires_at, now);
        }
        self.remember();
        Ok(Some(grant))
    }
}
