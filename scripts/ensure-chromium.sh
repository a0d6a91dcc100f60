#!/usr/bin/env bash
# The web console's tests drive Debian's Chromium (tests/integration/browser.py). Install it where it
# is missing and we are root; otherwise say so (those tests then fail naming what is missing).
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: installing Debian's chromium for the console's browser tests" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
else
  echo "ensure-chromium: chromium is missing and cannot be installed here (not root): the console tests will fail" >&2
fi
