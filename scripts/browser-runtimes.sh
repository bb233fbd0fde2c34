#!/usr/bin/env bash
# Puts the browser worker's runtimes (Pyodide, ffmpeg.wasm's single- and multi-threaded cores)
# and the dashboard's DASH player (dash.js, for streaming outputs in browsers without HLS)
# where the coordinator serves them at /runtimes/: only the files a browser loads, each runtime
# in a directory named by its version, plus runtimes.json naming the versions and directories.
# Idempotent; does nothing when everything is already in place.
# Usage: scripts/browser-runtimes.sh [DEST]   (default: target/browser-runtimes)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
web="$root/crates/idlegrid-coordinator/web"
dest=${1:-"$root/target/browser-runtimes"}

if ! command -v npm >/dev/null 2>&1; then
  echo "browser-runtimes: npm is missing: install Node.js 20 or newer with npm (Debian/Ubuntu: apt-get install nodejs npm)" >&2
  exit 1
fi

# node_modules is current when it was installed from this lock.
lock_sha=$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$web/node_modules/.installed-lock-sha256" 2>/dev/null)" != "$lock_sha" ]; then
  echo "browser-runtimes: installing the npm packages" >&2
  # A registry that fails for a moment (or an npm being upgraded as the machine starts) gets two
  # more tries; a lasting failure stops here with npm's own message.
  for try in 1 2 3; do
    if npm ci --prefix "$web" --no-audit --no-fund --loglevel=error; then
      break
    fi
    if [ "$try" = 3 ]; then
      echo "browser-runtimes: npm ci failed three times: see npm's log named above" >&2
      exit 1
    fi
    echo "browser-runtimes: npm ci failed; trying again in $((try * 5)) s" >&2
    sleep $((try * 5))
  done
  echo "$lock_sha" > "$web/node_modules/.installed-lock-sha256"
fi

pyodide="$web/node_modules/pyodide"
ffmpeg="$web/node_modules/@ffmpeg/core"
ffmpeg_mt="$web/node_modules/@ffmpeg/core-mt"
dashjs="$web/node_modules/dashjs"
version() { node -p 'require(process.argv[1]).version' "$1/package.json"; }

# Each runtime goes in a directory named by its version, so a file's address names its exact
# contents: the coordinator lets browsers keep them without asking again (immutable), and a
# new version is new addresses, never mixed with a cached part of the old one.
pyodide_dir="pyodide-$(version "$pyodide")"
ffmpeg_dir="ffmpeg-core-$(version "$ffmpeg")"
ffmpeg_mt_dir="ffmpeg-core-mt-$(version "$ffmpeg_mt")"
dashjs_dir="dashjs-$(version "$dashjs")"

# Copies the named files of $1 into $2, each only if it differs (through a temporary name, so
# a server never serves half a file), and removes anything else there.
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
sync_files "$pyodide" "$dest/$pyodide_dir" \
  pyodide.mjs pyodide.asm.mjs pyodide.asm.wasm python_stdlib.zip pyodide-lock.json
# ffmpeg.wasm's ES-module build, which finds its .wasm next to itself (import.meta.url).
sync_files "$ffmpeg/dist/esm" "$dest/$ffmpeg_dir" ffmpeg-core.js ffmpeg-core.wasm
# Its multi-threaded core, for pages that are cross-origin isolated: the same, plus the script
# each of its threads (a Web Worker) starts from.
sync_files "$ffmpeg_mt/dist/esm" "$dest/$ffmpeg_mt_dir" ffmpeg-core.js ffmpeg-core.wasm ffmpeg-core.worker.js
# dash.js's player as one ES module with its dependencies built in (without the DRM, reporting
# and Smooth Streaming parts, which the dashboard does not use), imported by the job page only
# for a streaming output; with the licence notices its first line points to, as it is handed
# on to every browser that loads it.
sync_files "$dashjs/dist/modern/esm" "$dest/$dashjs_dir" dash.mediaplayer.min.js dash.mediaplayer.min.js.LICENSE.txt

# Versions for the page and the coordinator (the packages' own, and the CPython inside
# Pyodide), and where each runtime is, for the runner and the job page.
node -e '
const [pyodide, ffmpeg, ffmpegMt, dashjs] = process.argv.slice(1, 5).map((dir) => require(`${dir}/package.json`));
const lock = require(`${process.argv[1]}/pyodide-lock.json`);
const [pyodideDir, ffmpegDir, ffmpegMtDir, dashjsDir] = process.argv.slice(5).map((dir) => `${dir}/`);
console.log(JSON.stringify({
  pyodide: pyodide.version, ffmpeg_core: ffmpeg.version, ffmpeg_core_mt: ffmpegMt.version, python: lock.info.python,
  dashjs: dashjs.version,
  dirs: { pyodide: pyodideDir, ffmpeg: ffmpegDir, ffmpeg_mt: ffmpegMtDir, dashjs: dashjsDir },
}));
' "$pyodide" "$ffmpeg" "$ffmpeg_mt" "$dashjs" "$pyodide_dir" "$ffmpeg_dir" "$ffmpeg_mt_dir" "$dashjs_dir" > "$dest/.runtimes.json.tmp"
if cmp -s "$dest/.runtimes.json.tmp" "$dest/runtimes.json"; then
  rm -f "$dest/.runtimes.json.tmp"
else
  mv -f "$dest/.runtimes.json.tmp" "$dest/runtimes.json"
fi

# Then what the new runtimes.json no longer names: older versions, and the unversioned
# directories of earlier layouts.
for name in "$dest"/* "$dest"/.[!.]*; do
  [ -e "$name" ] || continue
  case "$(basename "$name")" in
    runtimes.json | "$pyodide_dir" | "$ffmpeg_dir" | "$ffmpeg_mt_dir" | "$dashjs_dir") ;;
    *) rm -rf "$name" ;;
  esac
done
