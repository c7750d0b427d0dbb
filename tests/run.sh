#!/usr/bin/env bash
# The test command: install what is missing, then run every test.
# Usage: tests/run.sh   (from anywhere; no input is read)
set -euo pipefail
cd "$(dirname "$0")/.."

# softhsm2: the development token; opensc: pkcs11-tool, the independent
# PKCS#11 client the tests cross-check against.
tests/install-packages.sh softhsm2 opensc ca-certificates

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
