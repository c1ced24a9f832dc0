#!/usr/bin/env bash
# The whole suite: set up what is missing (system packages, virtualenv, image), then run pytest (the roles' lint is
# a test of its own: tests/roles/test_roles.py::test_ansible_lint_production_profile_passes).
#   scripts/test.sh              the whole suite, as two pytest processes (halves, below), one after the other
#   scripts/test.sh ARGS...      one pytest with these arguments (scripts/test.sh tests/api; -k openapi;
#                                --random-order)
#   scripts/test.sh --ci         what CI runs (.ci/run): the two halves, then every benchmark's smoke run
#                                (bench/smoke.sh) beside the fresh-machine check (tests/fresh/check.py)
# The halves share no instance name, port range, container or lab, so they can also run side by side
# (PGAAS_PYTEST_SLOTS=2, below):
#   control plane  tests/api, collection, e2e, ui, jobs and the top-level files (one control plane and pair: cp)
#   hosts          tests/roles, openstack, ssh, operators, lab (molecule, the OpenStack double, the SSH labs)
# Each task's output goes to a file and is printed whole when it ends, with its wall time; the failed tests of every
# pytest are listed again at the very end.
set -euo pipefail
cd "$(dirname "$0")/.."
phase() {  # phase NAME COMMAND...: run it, print how long it took
  local name=$1 t0=$SECONDS rc=0
  shift
  echo "[test] ${name}"
  "$@" || rc=$?
  echo "[test] ${name}: $((SECONDS - t0)) s$([ "$rc" = 0 ] || echo " (failed, exit $rc)")"
  return "$rc"
}
ci=0
if [ "${1:-}" = "--ci" ]; then
  ci=1
  shift
fi
phase "set-up" scripts/setup.sh --test
# The suite's fixed port ranges (30000-37999, tests/conftest.py RESERVED_PORTS) lie partly inside the kernel's
# ephemeral range (32768-60999): any client's source port could hold a member's or a repository's port at the moment
# podman or pgBackRest binds it (seen under load: a member "exited with code 126", a repository server that never
# listened). The kernel is told to keep them out of automatic assignment (this network namespace, until a reboot).
reserved=$(sysctl -n net.ipv4.ip_local_reserved_ports 2>/dev/null || true)
case ",$reserved," in
  *",30000-37999,"*) ;;
  *) sysctl -qw net.ipv4.ip_local_reserved_ports="${reserved:+$reserved,}30000-37999" 2>/dev/null \
       || echo "[test] note: ports 30000-37999 could not be reserved (not root?): rare port clashes under load" ;;
esac
export CONTAINERS_CONF="$PWD/etc/containers.conf"
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p test-artifacts
if [ "$#" -gt 0 ]; then
  phase "pytest" python -m pytest --durations=40 "$@"  # 40: enough to see where the time goes
  exit
fi

HOSTS=(tests/roles tests/openstack tests/ssh tests/operators tests/lab)
CONTROL_PLANE=()
for path in tests/*; do  # every other directory and top-level test file (a new directory lands here)
  case " ${HOSTS[*]} " in *" $path "*) continue ;; esac
  { [ -d "$path" ] && compgen -G "$path/test_*.py" >/dev/null; } || [[ $path == tests/test_*.py ]] || continue
  CONTROL_PLANE+=("$path")
done
# --basetemp: each its own (pytest would otherwise number and prune one shared tree); -p no:cacheprovider: the two
# would write .pytest_cache at once
pytest_part() {  # pytest_part NAME PATHS...
  local name=$1
  shift
  python -m pytest -p no:cacheprovider --basetemp="/tmp/pgaas-tests-${name}" --durations=25 "$@"
}
names=("pytest: control plane" "pytest: hosts")
cmds=("pytest_part control-plane ${CONTROL_PLANE[*]}" "pytest_part hosts ${HOSTS[*]}")
if [ "$ci" = 1 ]; then
  # the longer first: the smoke runs take the slot the first half frees, the fresh-machine check the other's
  names+=("benchmarks, smoke runs (bench/smoke.sh)" "fresh-machine check (tests/fresh/check.py)")
  cmds+=("bench/smoke.sh" "python3 tests/fresh/check.py")
fi

# PGAAS_PYTEST_SLOTS=2 runs the two halves side by side, and the next task in the slot the first frees: about 5
# minutes less of CI's 76 (measured: 71), but on 2 cores every directory then runs at 1.9 to 2.0 cores busy and
# timing-bound tests failed under it (a synchronous pair's rolling restart past its 240 s; the dashboard's samples).
# Default 1: one half after the other; the smoke runs and the fresh-machine check side by side after them.
pytest_slots=${PGAAS_PYTEST_SLOTS:-1}
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A task_of=() start_of=()
results=() failed=0 next=0 t_all=$SECONDS
start() {
  local i=$next
  next=$((next + 1))
  echo "[test] start: ${names[$i]}"
  (eval "${cmds[$i]}") >"$logs/$i" 2>&1 &
  task_of[$!]=$i
  start_of[$!]=$SECONDS
}
can_start() {  # whether the next task may start now (see PGAAS_PYTEST_SLOTS above)
  [ "$next" -lt "${#cmds[@]}" ] || return 1
  local halves=0 t
  for t in "${task_of[@]}"; do [ "$t" -ge 2 ] || halves=$((halves + 1)); done
  if [ "$next" -lt 2 ]; then
    [ "${#task_of[@]}" -lt "$pytest_slots" ]
  else
    [ "${#task_of[@]}" -lt 2 ] && { [ "$pytest_slots" -ge 2 ] || [ "$halves" = 0 ]; }
  fi
}
while can_start; do start; done
while [ "${#task_of[@]}" -gt 0 ]; do
  rc=0
  wait -n -p done_pid "${!task_of[@]}" || rc=$?
  i=${task_of[$done_pid]}
  took=$((SECONDS - start_of[$done_pid]))
  unset "task_of[$done_pid]" "start_of[$done_pid]"
  while can_start; do start; done  # its slot takes the next task at once
  echo "[test] ===== ${names[$i]}: its output ====="
  cat "$logs/$i"
  outcome=$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")
  echo "[test] ${names[$i]}: ${took} s, ${outcome}"
  results+=("$(printf '  %6d s  %-45s %s' "$took" "${names[$i]}" "$outcome")")
  [ "$rc" = 0 ] || failed=1
done
echo "[test] wall time per task (pytest halves side by side: PGAAS_PYTEST_SLOTS=${pytest_slots}):"
printf '%s\n' "${results[@]}"
for i in "${!names[@]}"; do  # the failures again, last, where a reader of the end of the log sees them
  grep -E "^(FAILED|ERROR) tests/" "$logs/$i" | sed "s|^|[test] ${names[$i]}: |" || true
done
echo "[test] total: $((SECONDS - t_all)) s$([ "$failed" = 0 ] || echo " (FAILED)")"
exit "$failed"
