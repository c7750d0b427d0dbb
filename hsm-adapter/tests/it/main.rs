//! Integration tests of the seed vault against a real SoftHSM token.

mod concurrency;
mod pkcs11_tool;
mod rewrap;
mod rfc6238;
mod sealing;
mod token;
