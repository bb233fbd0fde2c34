#!/usr/bin/env bash
# Screenshots of the dashboard's main pages for the documentation, into docs/screenshots/: runs
# the browser tests as scripts/test.sh does, with IDLEGRID_SCREENSHOTS naming that directory, so
# each test saves what a 1366×900 screen (and, for a few pages, a 390×844 phone) shows of the
# pages it visits. The tests must pass for the set to be complete.
# Needs a built binary (target/debug/idlegrid, or IDLEGRID_BIN: `cargo build -p idlegrid`) and
# what scripts/test.sh installs for the browser tests (Chromium, Node.js with npm).
set -euo pipefail
cd "$(dirname "$0")/.."

web=crates/idlegrid-coordinator/web
bin=${IDLEGRID_BIN:-$PWD/target/debug/idlegrid}
if [ ! -x "$bin" ]; then
  echo "screenshots: no idlegrid binary at $bin: build it first (cargo build -p idlegrid)" >&2
  exit 1
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  echo "screenshots: Chromium is missing: run scripts/test.sh once, or apt-get install chromium" >&2
  exit 1
fi
# The npm packages (playwright-core) and the browser worker's runtimes, as for scripts/test.sh.
scripts/browser-runtimes.sh

out="$PWD/docs/screenshots"
mkdir -p "$out"
# Only this run's pictures: none left from pages that are gone.
rm -f "$out"/*.png
echo "== dashboard in headless Chromium, screenshots into docs/screenshots"
IDLEGRID_BIN="$bin" IDLEGRID_SCREENSHOTS="$out" npm test --prefix "$web"
echo "== $(find "$out" -name '*.png' | wc -l) screenshots in docs/screenshots"
