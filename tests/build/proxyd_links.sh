#!/bin/sh
# proxyd runs the control commands from its own table (control/server_commands.*): proxyctl's
# table (argv parsing, help, text rendering) must not be linked into it. Usage: proxyd_links.sh PROXYD
set -eu
bin=$1
symbols=$(nm -C "$bin")
for forbidden in 'proxyd::control::command_table' 'proxyd::control::parse_command_line' \
  'proxyd::control::help_text'; do
  if echo "$symbols" | grep -qF "$forbidden"; then
    echo "FAIL: $bin contains $forbidden" >&2
    exit 1
  fi
done
echo "ok: $bin does not carry proxyctl's command table"
