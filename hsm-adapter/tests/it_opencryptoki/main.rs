//! The vault's integration tests (`tests/it`) again, against a second
//! PKCS#11 implementation: opencryptoki's software token, started and
//! initialised by the harness. Same tests, another token: RFC 6238 vectors,
//! sealing and binding, rewrap, many callers at once. (The `pkcs11-tool`
//! cross-check stays SoftHSM's: opencryptoki will not report `CKA_CLASS` of a
//! sensitive key, so pkcs11-tool cannot list our keys there at all.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests report failure by panicking

#[path = "../it/common.rs"]
mod common;
#[path = "../it/concurrency.rs"]
mod concurrency;
#[path = "../it/rewrap.rs"]
mod rewrap;
#[path = "../it/rfc6238.rs"]
mod rfc6238;
#[path = "../it/sealing.rs"]
mod sealing;
#[path = "../shared/mod.rs"]
mod shared;
mod token;
