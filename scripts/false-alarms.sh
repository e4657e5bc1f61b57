#!/usr/bin/env bash
# The false-alarm measurement behind `make false-alarms` (about an hour on 2 cores): the
# suites repeated with new seeds on correct servers, where every failure is a harness bug
# or a named server bug. Rows: 10 x `--suite all` on Redis 6.2, Redis 7.0 and Valkey 8.0
# (local), 5 x on docker Redis 7.0, and 5 x the chaos suite on Redis 7.0 with a CPU hog on
# every core. Each soak writes reports/false-alarms/NAME/soak.json; the verdict lines of
# all of them are printed at the end. ONLY=GLOB narrows the rows; REPEAT=N overrides the
# counts (a quick look: REPEAT=1).
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
only=${ONLY:-*}
workers=${WORKERS:-3}
failed=()

# name | repeat | arguments of `python -m harness soak`
rows=(
  "local-redis-6.2|10|--impl redis-6.2 --suite all"
  "local-redis-7.0|10|--impl redis-7.0 --suite all"
  "local-valkey-8.0|10|--impl valkey-8.0 --suite all"
  "docker-redis-7.0|5|--backend docker --impl redis-7.0 --suite all"
  "hog-local-redis-7.0|5|--impl redis-7.0 --suite chaos --cpu-hog $(nproc)"
)

t_all=$SECONDS
for row in "${rows[@]}"; do
  IFS='|' read -r name repeat rest <<<"$row"
  # shellcheck disable=SC2053  # the pattern is a glob on purpose
  [[ $name == $only ]] || continue
  read -r -a args <<<"$rest"
  t0=$SECONDS
  echo "== false-alarms $name: soak --repeat ${REPEAT:-$repeat} ${args[*]}" >&2
  if ! $py -m harness soak --repeat "${REPEAT:-$repeat}" "${args[@]}" -n "$workers" \
    --report-dir "reports/false-alarms/$name" >"reports/false-alarms-$name.txt" 2>&1; then
    failed+=("$name")
  fi
  echo "== false-alarms $name: $((SECONDS - t0)) s: $(grep '^verdict:' "reports/false-alarms-$name.txt")" >&2
done
echo "== false-alarms total: $((SECONDS - t_all)) s"
if ((${#failed[@]})); then
  echo "false-alarms: failed: ${failed[*]} (tables in reports/false-alarms-NAME.txt)" >&2
  exit 1
fi
