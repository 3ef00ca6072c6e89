#!/usr/bin/env sh
# run.sh: runs one black-box server test under ctest: run.sh TEST.mjs TANDEM_BIN SHARED_DIR.
# Exits 77 (ctest: skipped) only when Node.js is missing; a missing OpenAI client package is a failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: Node.js (node) is not installed, so the server tests cannot run"
  exit 77
fi
if [ ! -f "$here/node_modules/openai/package.json" ]; then
  echo "FAILED: the test client is not installed: run scripts/setup.sh (or tests/server/install.sh)" >&2
  exit 1
fi
TANDEM_BIN=$2 TND_SHARED_DIR=$3 exec node --test-reporter=spec "$here/$1"
