#!/usr/bin/env bash
# Apache Spark (the clean room's Spark engine, matching on Spark, benchmarks/scale.py) runs on a
# Java 17 runtime: install Debian's if there is no java.
set -euo pipefail
if command -v java >/dev/null 2>&1; then exit 0; fi
echo "java not found: installing Debian's openjdk-17-jre-headless"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null
command -v java >/dev/null
