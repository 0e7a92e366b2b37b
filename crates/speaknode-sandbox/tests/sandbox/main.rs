//! Integration tests: real HTTP against a sandbox on 127.0.0.1:0, checked against the
//! contract's fixtures. One test binary, so the crate is linked once.

mod api;
mod auth;
mod conversations;
mod hub;
mod identity;
mod signalr;
mod support;
mod webhooks;
