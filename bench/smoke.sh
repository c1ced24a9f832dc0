#!/usr/bin/env bash
# Every benchmark's --smoke in turn (CI): the smallest real run of each, which fails when the script breaks; the
# figures are printed as usual and not judged. All of them run, then each one's wall time and outcome is listed;
# the exit status is 1 if any failed. Each gets PGAAS_SMOKE_TIMEOUT seconds (default 600), then SIGTERM (it cleans
# up and fails); Ctrl-C or SIGTERM stops the running one the same way and runs no more.
#   bench/smoke.sh              every bench/*.py (files starting with _ are helpers, not benchmarks)
#   bench/smoke.sh provision    only the named ones
set -uo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="$PWD/etc/containers.conf"
export PATH="$PWD/.venv/bin:$PATH"
limit=${PGAAS_SMOKE_TIMEOUT:-600}

benches=()
for arg in "$@"; do
  benches+=("bench/$(basename "$arg" .py).py")
done
[ "${#benches[@]}" -gt 0 ] || benches=(bench/[!_]*.py)

child="" stop=0
trap 'stop=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' INT TERM
rows=() failed=0 t_all=$SECONDS
for bench in "${benches[@]}"; do
  name=$(basename "$bench" .py)
  if [ ! -f "$bench" ]; then
    rows+=("$(printf '  %-18s %5s   FAILED (no such bench)' "$name" -)")
    failed=1
    continue
  fi
  echo "[smoke] ${name}"
  t0=$SECONDS
  # timeout runs the bench in a process group of its own and passes our SIGTERM on to it
  timeout --signal=TERM --kill-after=120 "$limit" python "$bench" --smoke &
  child=$!
  rc=0
  wait "$child" || rc=$?
  while kill -0 "$child" 2>/dev/null; do  # a trapped signal ends wait early: let the bench finish its cleanup
    rc=0
    wait "$child" || rc=$?
  done
  child=""
  took=$((SECONDS - t0))
  case $rc in
    0) outcome="ok" ;;
    124) outcome="FAILED (timed out after ${limit} s)" ;;
    *) outcome="FAILED (exit ${rc})" ;;
  esac
  [ "$rc" = 0 ] || failed=1
  echo "[smoke] ${name}: ${took} s, ${outcome}"
  rows+=("$(printf '  %-18s %5d s  %s' "$name" "$took" "$outcome")")
  if [ "$stop" = 1 ]; then
    rows+=("  (interrupted: the rest did not run)")
    failed=1
    break
  fi
done

echo "[smoke] wall time per bench:"
printf '%s\n' "${rows[@]}"
printf '  %-18s %5d s  %s\n' "total" "$((SECONDS - t_all))" "$([ "$failed" = 0 ] && echo "all passed" || echo "FAILED")"
exit "$failed"
