#!/usr/bin/env bash
# The test command: install what is missing, then run every test.
# Usage: tests/run.sh   (from anywhere; no input is read)
set -euo pipefail
cd "$(dirname "$0")/.."

# softhsm2: the development token; opensc: pkcs11-tool, the independent
# PKCS#11 client the tests cross-check against.
# chromium + chromium-driver: the browser tests; zbar-tools: reading the QR
# code from a screenshot, as a phone camera would. pcscd + vsmartcard-vpcd:
# a real PC/SC stack with a virtual reader for the virtual YubiKey;
# libpcsclite-dev + pkg-config: building the pcsc crate; yubikey-manager:
# Yubico's ykman, which must accept the virtual card.
tests/install-packages.sh softhsm2 opensc ca-certificates chromium chromium-driver zbar-tools fonts-dejavu-core openssl curl \
    pcscd vsmartcard-vpcd libpcsclite-dev pkg-config yubikey-manager p11-kit p11-kit-modules opencryptoki

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# Library, binary and integration tests (the benchmarks run on their own:
# docs/PERFORMANCE.md). The totals go on the last line.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked --lib --bins --tests 2>&1 | tee "$log" || status=$?
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "tests: %d passed, %d failed\n", passed, failed }' "$log"
exit "$status"
