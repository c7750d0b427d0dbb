#!/usr/bin/env bash
# The run command: install what is missing, build, and start Gatehouse on its
# embedded defaults: http://127.0.0.1:8080/, data in ./gatehouse-data, and a
# SoftHSM token created there on first start. On the first start it creates
# the administrator `admin` and prints a one-time password, once.
# Extra arguments go to `gatehouse serve` (see `gatehouse serve --help`).
set -euo pipefail
cd "$(dirname "$0")"
tests/install-packages.sh softhsm2 ca-certificates
cargo build --release --locked --bin gatehouse
exec target/release/gatehouse serve "$@"
