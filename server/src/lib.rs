//! Gatehouse: a sign-in server with multi-factor authentication whose TOTP
//! seeds live in a PKCS#11 token.
//!
//! Layers: `http` (axum handlers, views, cookies, CSRF) calls `domain`
//! (sign-in, enrollment, lockout, sessions, administration), which calls
//! `store` (the only SQL) and the vault (`hsm-adapter`, the only PKCS#11).

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod random;
pub mod server;
pub mod store;
pub mod tls;
