#!/bin/sh
# proxyctl is the control socket's client: it must link neither yaml-cpp (the config reader) nor
# the data plane (Beast, the session and snapshot code). Checks the binary's dynamic dependencies
# and its symbols. Usage: proxyctl_links.sh PROXYCTL
set -eu
bin=$1
needed=$(readelf -d "$bin" | grep NEEDED || true)
echo "$needed"
if echo "$needed" | grep -qi yaml; then
  echo "FAIL: $bin links yaml-cpp" >&2
  exit 1
fi
symbols=$(nm -C "$bin")
for forbidden in 'YAML::' 'proxyd::load_config' 'proxyd::build_snapshot' 'proxyd::Worker' \
  'boost::beast'; do
  if echo "$symbols" | grep -qF "$forbidden"; then
    echo "FAIL: $bin contains $forbidden" >&2
    exit 1
  fi
done
echo "ok: $bin links neither yaml-cpp nor the data plane"
