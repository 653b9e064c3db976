#!/bin/sh
# Runs promtool with the given arguments. A missing promtool is a failure, not a skip: the rules
# would go untested without anyone noticing. ./setup installs it (Debian package prometheus).
set -eu
if ! command -v promtool >/dev/null 2>&1; then
  echo "FAIL: promtool not found: run ./setup deps (it installs the Debian package prometheus)" >&2
  exit 1
fi
exec promtool "$@"
