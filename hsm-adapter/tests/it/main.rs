//! Integration tests of the seed vault against a real SoftHSM token.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

mod common;
mod concurrency;
mod pkcs11_tool;
mod rewrap;
mod rfc6238;
mod sealing;
#[path = "../shared/mod.rs"]
mod shared;
mod token;
