#!/usr/bin/env bash
# deploy.sh NEW_COLOR SERVER...: the release cycle of docs/deploy.md with proxyctl alone.
#
# NEW_COLOR is the idle pool (blue or green) where your orchestration (docker compose, systemd
# units, ...) has just started the new version; SERVER... are its servers as the config names
# them (127.0.0.1:9011). The script puts them in rotation, waits until their health checks pass,
# binds the pool to the passive slot of every route, checks it through the preview listener, then
# lets proxyd run the canary of each route (`proxyctl rollout`, all routes side by side). Exit 0:
# every route flipped, NEW_COLOR is live. Exit 1: a rollout aborted (proxyd set its weight back
# to 0 on the evidence); the routes that had completed are flipped back, so the release is all or
# nothing and the old version serves everything again.
#
# Environment (all optional):
#   PROXYD_SOCKET    the control socket (proxyctl's own default: /run/proxyd/control.sock)
#   PROXYCTL         the proxyctl binary (default: proxyctl on PATH)
#   ROUTES           the routes to roll out (default: "api web")
#   PREVIEW_URL      the preview listener (slot: passive) to smoke-test (default:
#                    http://127.0.0.1:8081/)
#   ROLLOUT_OPTIONS  options for every `proxyctl rollout` (default: none, proxyd's plan:
#                    0.5, 5, 20, 50, 100% with 5 minutes a step)
#   HEALTH_TIMEOUT   how long to wait for the new servers' checks (default: 120s)
set -euo pipefail

if (($# < 2)); then
  echo "usage: deploy.sh NEW_COLOR SERVER..." >&2
  exit 2
fi
new=$1
shift
read -r -a routes <<< "${ROUTES:-api web}"
read -r -a rollout_options <<< "${ROLLOUT_OPTIONS:-}"
ctl() { "${PROXYCTL:-proxyctl}" "$@"; }

# 1. The new version's servers back in rotation (a previous rollback may have drained them),
#    then proven healthy by proxyd's own checks. proxyctl names a server that fails and why.
for server in "$@"; do
  ctl server enable "$new" "$server" > /dev/null
done
ctl wait-healthy "$new" --timeout "${HEALTH_TIMEOUT:-120s}"

# 2. Bind it passive on every route with no public share: one batch, all or nothing.
for route in "${routes[@]}"; do
  printf 'set-passive %s %s\nset-weight %s 0\n' "$route" "$new" "$route"
done | ctl apply - > /dev/null
echo "deploy: $new is passive on ${routes[*]}"

# 3. Preview: the passive pool answers through the preview listener before any user sees it.
curl -fsS -o /dev/null "${PREVIEW_URL:-http://127.0.0.1:8081/}"
echo "deploy: preview answers"

# 4. The canaries, run by proxyd and followed here; each aborts on its own evidence.
pids=()
for route in "${routes[@]}"; do
  ctl rollout "$route" "${rollout_options[@]}" &
  pids+=($!)
done
failed=()
for i in "${!routes[@]}"; do
  wait "${pids[$i]}" || failed+=("${routes[$i]}")
done
if ((${#failed[@]} == 0)); then
  echo "deploy: $new is live on ${routes[*]}"
  exit 0
fi

# 5. Roll back: stop the canaries still running, flip back the routes that completed.
for route in "${routes[@]}"; do
  phase=$(ctl rollout status "$route" | awk -v r="$route" '$1 == r { print $2 }')
  case $phase in
    running | paused) ctl rollout abort "$route" > /dev/null ;;
    completed) ctl flip "$route" > /dev/null ;;
  esac
done
echo "deploy: rolled back (${failed[*]} aborted); the old version serves ${routes[*]}" >&2
exit 1
