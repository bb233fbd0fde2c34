#!/usr/bin/env bash
# Quick start, command 2: install what the tests need and run every check and test:
# formatting, clippy (warnings are errors), unit tests, API tests on a real loopback server,
# and end-to-end tests that start the real `idlegrid` binary (coordinator, workers, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# Schemathesis (PyPI) checks the API against its OpenAPI document in the end-to-end tests.
SCHEMATHESIS_VERSION=4.32.5
export SCHEMATHESIS="$PWD/target/pytools/bin/schemathesis"
if ! "$SCHEMATHESIS" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "== installing schemathesis $SCHEMATHESIS_VERSION into target/pytools"
  rm -rf target/pytools
  mkdir -p target
  if ! python3 -m venv target/pytools 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv target/pytools
    else
      echo "setup: python3 cannot make a virtual environment: install python3-venv" >&2
      exit 1
    fi
  fi
  target/pytools/bin/pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# The dashboard's browser tests: Debian's Chromium, driven by playwright-core from npm (the
# exact version in crates/idlegrid-coordinator/web/package-lock.json).
web=crates/idlegrid-coordinator/web
need_apt=()
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: the browser tests need: ${need_apt[*]}" >&2
    exit 1
  fi
fi
# The npm packages (playwright-core, and the browser worker's runtimes: Pyodide, ffmpeg.wasm),
# with the runtimes put where the coordinator serves them (target/browser-runtimes, beside
# target/debug/idlegrid).
scripts/browser-runtimes.sh

# PostgreSQL, Redis and an S3 server on loopback for the scale-out backends' tests; stopped on
# exit. The tests fail rather than skip when they cannot reach them.
trap 'scripts/services.sh stop' EXIT
services_env=$(scripts/services.sh start)
eval "$services_env"
export IDLEGRID_REQUIRE_SERVICES=1

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
  # nextest does not run doc tests
  cargo test --workspace --doc --quiet
  echo "== end-to-end tests again, on PostgreSQL + Redis + S3"
  IDLEGRID_E2E_BACKENDS=services cargo nextest run -p idlegrid --test e2e --no-fail-fast \
    -E 'not test(one_of_two_coordinators)'
else
  cargo test --workspace --no-fail-fast
  echo "== end-to-end tests again, on PostgreSQL + Redis + S3"
  IDLEGRID_E2E_BACKENDS=services cargo test -p idlegrid --test e2e --no-fail-fast -- \
    --skip one_of_two_coordinators
fi
echo "== dashboard in headless Chromium"
cargo build -p idlegrid --quiet
IDLEGRID_BIN="$PWD/target/debug/idlegrid" npm test --prefix "$web"
