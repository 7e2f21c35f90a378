#!/usr/bin/env bash
# Make sure the PostgreSQL server the tests use answers at 127.0.0.1:5432; start it if it does
# not, and install it from Debian's packages if it is not there at all.
set -euo pipefail

ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! command -v pg_isready >/dev/null 2>&1; then
  echo "PostgreSQL client tools not found: installing Debian's postgresql"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
if ready; then exit 0; fi

echo "PostgreSQL is not answering on 127.0.0.1:5432: starting it"
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /etc/postgresql | sort -V | tail -1)
conf=/etc/postgresql/$version/main
# Tests connect as postgres over TCP without a password, as on the development machines.
if ! grep -q "^host all all 127.0.0.1/32 trust" "$conf/pg_hba.conf"; then
  sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$conf/pg_hba.conf"
fi
pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
for _ in $(seq 1 30); do ready && exit 0; sleep 1; done
echo "PostgreSQL did not start" >&2
exit 1
