#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright; Playwright never downloads one.
# Install it when missing and we may (root with apt-get, as in CI); otherwise say what to do.
set -euo pipefail
browser="${KIT_CHROMIUM:-/usr/bin/chromium}"
[ -x "$browser" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    [ -x "$browser" ] && exit 0
fi
echo "The browser tests need Chromium at $browser: install it (sudo apt-get install chromium)" \
     "or point KIT_CHROMIUM at a Chromium binary, then run make test again." >&2
exit 1
