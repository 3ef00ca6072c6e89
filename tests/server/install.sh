#!/usr/bin/env sh
# install.sh: installs the pinned test client (the `openai` npm package) for the server tests, from
# package-lock.json. Does nothing without Node.js.
set -eu
cd "$(dirname "$0")"
if ! command -v npm >/dev/null 2>&1; then
  echo "install.sh: npm not found; the server tests will be skipped" >&2
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
