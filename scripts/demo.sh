#!/usr/bin/env bash
# Quick start, command 1: install what is missing, build idlegrid, and run the main job on the
# embedded default — a python-map job through a throw-away local grid (coordinator + workers
# on this machine, SQLite records, local blobs).
#
#   scripts/demo.sh [LINES]      (default 200000 numbers, tested for primality in chunks)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

lines="${1:-200000}"
cargo build --release --quiet -p idlegrid
bin=target/release/idlegrid

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
seq 1 "$lines" > "$work/numbers.txt"

echo "idlegrid demo: testing $lines numbers for primality, 10000 per chunk, on a local grid"
# No coordinator configured: `idlegrid run` starts a throw-away local grid by itself.
env -u IDLEGRID_URL -u IDLEGRID_API_KEY IDLEGRID_HOME="$work/home" \
  "$bin" run examples/primes.py --input "$work/numbers.txt" --output "$work/primes.txt" \
  --chunk-lines 10000 --params '{"label": "prime"}'

echo "first lines of the output:"
head -n 5 "$work/primes.txt"
echo "primes found: $(grep -c ' prime$' "$work/primes.txt")"
