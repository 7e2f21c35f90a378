#!/usr/bin/env bash
# The HTTP load benchmark (benchmarks/ads_api.py) drives its servers with wrk: install Debian's
# package if it is not there.
set -euo pipefail
if command -v wrk >/dev/null 2>&1; then exit 0; fi
echo "wrk not found: installing Debian's wrk"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
command -v wrk >/dev/null
