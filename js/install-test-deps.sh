#!/usr/bin/env bash
# Install what the JS tests need; safe to run again (does nothing when all is in place).
#   - Chromium at /usr/bin/chromium (apt), only when missing.
#   - node_modules via `npm ci`, only when missing or when package-lock.json changed since the last run.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x /usr/bin/chromium ]; then
  echo "install-test-deps: installing chromium with apt-get" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi

stamp=node_modules/.wsactor-lock.sha256
want="$(sha256sum package-lock.json | cut -d' ' -f1)"
if [ ! -d node_modules ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "install-test-deps: npm ci" >&2
  # --ignore-scripts: the only install script in the tree (storage-engine, via primus -> diagnostics)
  # picks a React Native storage backend and is irrelevant here.
  npm ci --ignore-scripts --no-audit --no-fund
  echo "$want" > "$stamp"
fi
