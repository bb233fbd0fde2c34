#!/usr/bin/env bash
# Puts the browser worker's runtimes (Pyodide, ffmpeg.wasm's single-threaded core) where the
# coordinator serves them at /runtimes/: only the files a browser loads, plus runtimes.json
# naming their versions. Idempotent; does nothing when everything is already in place.
# Usage: scripts/browser-runtimes.sh [DEST]   (default: target/browser-runtimes)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
web="$root/crates/idlegrid-coordinator/web"
dest=${1:-"$root/target/browser-runtimes"}

if ! command -v npm >/dev/null 2>&1; then
  echo "browser-runtimes: npm is missing: install Node.js 18 or newer with npm (Debian/Ubuntu: apt-get install nodejs npm)" >&2
  exit 1
fi

# The same stamp as scripts/test.sh: node_modules is current when it was installed from this lock.
lock_sha=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$web/node_modules/.installed-lock-sha256" 2>/dev/null)" != "$lock_sha" ]; then
  echo "browser-runtimes: installing the npm packages" >&2
  npm ci --prefix "$web" --no-audit --no-fund --loglevel=error
  echo "$lock_sha" > "$web/node_modules/.installed-lock-sha256"
fi

pyodide="$web/node_modules/pyodide"
ffmpeg="$web/node_modules/@ffmpeg/core/dist/esm"

# Copies the named files of $1 into $2, each only if it differs (through a temporary name, so
# a server never serves half a file), and removes anything else there (an older version's).
sync_files() {
  local from=$1 to=$2 name
  shift 2
  mkdir -p "$to"
  for name in "$@"; do
    if ! cmp -s "$from/$name" "$to/$name"; then
      cp "$from/$name" "$to/.$name.tmp"
      mv -f "$to/.$name.tmp" "$to/$name"
    fi
  done
  for name in "$to"/* "$to"/.[!.]*; do
    [ -e "$name" ] || continue
    case " $* " in *" $(basename "$name") "*) ;; *) rm -rf "$name" ;; esac
  done
}

# Pyodide 314 runs only as an ES module: its loader, the Emscripten module, the interpreter,
# the standard library and the lock file it reads at start-up.
sync_files "$pyodide" "$dest/pyodide" \
  pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json
# The ES-module build, which finds its .wasm next to itself (import.meta.url).
sync_files "$ffmpeg" "$dest/ffmpeg" ffmpeg-core.js ffmpeg-core.wasm

# Versions for the page and the coordinator: the packages' own, and the CPython inside Pyodide.
node -e '
const [pyodide, ffmpeg] = process.argv.slice(1).map((dir) => require(`${dir}/package.json`));
const lock = require(`${process.argv[1]}/pyodide-lock.json`);
console.log(JSON.stringify({ pyodide: pyodide.version, ffmpeg_core: ffmpeg.version, python: lock.info.python }));
' "$pyodide" "$web/node_modules/@ffmpeg/core" > "$dest/.runtimes.json.tmp"
if cmp -s "$dest/.runtimes.json.tmp" "$dest/runtimes.json"; then
  rm -f "$dest/.runtimes.json.tmp"
else
  mv -f "$dest/.runtimes.json.tmp" "$dest/runtimes.json"
fi
