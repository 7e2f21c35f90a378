#!/usr/bin/env bash
# The browser tests drive Debian's Chromium through Playwright (executable_path), never a browser
# Playwright downloads itself: install Debian's package if it is not there.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
echo "Chromium not found: installing Debian's chromium"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
test -x /usr/bin/chromium
