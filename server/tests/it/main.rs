//! End-to-end tests: the real `gatehouse` binary on a free loopback port,
//! with a temporary data directory and SoftHSM token, driven over HTTP by a
//! cookie-keeping client as a browser would.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

mod browser;
mod chromium;
mod cli;
mod hardening;
mod lockout;
mod module;
mod oauth;
mod replay;
mod signin;
mod tls;
mod token_loss;
mod validate;
