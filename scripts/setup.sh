#!/usr/bin/env bash
# Installs what idlegrid needs that this machine lacks. Sourced by demo.sh and test.sh.
# Needs: a Rust toolchain (cargo), Python 3 for task scripts, FFmpeg (ffmpeg + ffprobe) for the
# video app on coordinators and workers. Uses apt-get (Debian/Ubuntu) when something is missing
# and we are root; otherwise says what to install.
set -euo pipefail

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
# A worker running as root runs task scripts as `nobody`, who cannot reach an interpreter under
# /root (pyenv and the like): the system's Python must be there too.
if [ "$(id -u)" = 0 ] && [ ! -x /usr/bin/python3 ]; then need_apt+=(python3); fi
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
{ command -v ffmpeg && command -v ffprobe; } >/dev/null 2>&1 || need_apt+=(ffmpeg)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing: install Rust from https://rustup.rs (1.95 or newer)" >&2
  exit 1
fi
