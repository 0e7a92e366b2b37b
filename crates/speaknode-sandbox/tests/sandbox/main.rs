//! Integration tests: real HTTP against a sandbox on 127.0.0.1:0, checked against the
//! contract's fixtures. One test binary, so the crate is linked once.

mod actions;
mod admin;
mod api;
mod auth;
mod conversations;
mod hub;
mod identity;
mod keys;
mod lists;
mod livekit;
mod login;
mod ratelimit;
mod refresh;
mod rtc;
mod scenarios;
mod signalr;
mod support;
mod webhooks;
