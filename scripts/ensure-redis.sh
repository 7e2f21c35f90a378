#!/usr/bin/env bash
# Make sure the Redis server the shared rate-limit tests use answers at 127.0.0.1:6379; start it
# if it does not, and install it from Debian's packages if it is not there at all.
set -euo pipefail

ready() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "Redis not found: installing Debian's redis-server"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ready; then exit 0; fi

echo "Redis is not answering on 127.0.0.1:6379: starting it"
# A scratch server for tests: nothing is written to disk.
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no >/dev/null
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "Redis did not start" >&2
exit 1
