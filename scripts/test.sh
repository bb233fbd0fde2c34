#!/usr/bin/env bash
# Quick start, command 2: install what the tests need and run every check and test:
# formatting, clippy (warnings are errors), unit tests, API tests on a real loopback server,
# and end-to-end tests that start the real `idlegrid` binary (coordinator, workers, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doc tests
  cargo test --workspace --doc --quiet
else
  cargo test --workspace --no-fail-fast
fi
