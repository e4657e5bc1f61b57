#!/usr/bin/env bash
# The full matrix behind `make matrix`: every suite on every verified implementation, on
# both backends, plain and secured. CI runs a subset of it (see .ci/run); run the whole of
# it before resolving an issue that adds a suite. Each run writes reports/matrix/NAME/; the
# table at the end is read from their summary.json files. ONLY=PATTERN runs the rows whose
# name matches the (bash) glob, e.g. `make matrix ONLY='*tls*'`. SUITE=NAME runs that one
# suite instead of all of them on each implementation row (the regression and upgrade rows
# are left out): `make matrix SUITE=conformance` is the conformance matrix.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
only=${ONLY:-*}
failed=()

# name | arguments of `python -m harness run` (or, starting with `upgrade`, of
# `python -m harness upgrade`: rolling-upgrade rehearsals); TRIXIE is the trixie image.
# The regression catalogue runs RUNS times per scenario (default 5) for k of n.
rows=(
  "local-redis-6.2|--impl redis-6.2 --suite all"
  "local-redis-7.0|--impl redis-7.0 --suite all"
  "local-valkey-8.0|--impl valkey-8.0 --suite all"
  "local-valkey-8.1|--impl valkey-8.1 --suite all"
  "docker-redis-6.2|--backend docker --impl redis-6.2 --suite all"
  "docker-redis-7.0|--backend docker --impl redis-7.0 --suite all"
  "docker-valkey-8.0|--backend docker --impl valkey-8.0 --suite all"
  "docker-redis-8.0|--backend docker --image TRIXIE --impl redis-8.0 --suite all"
  "docker-valkey-8.1|--backend docker --image TRIXIE --impl valkey-8.1 --suite all"
  "local-password-redis-7.0|--impl redis-7.0 --auth password --suite all"
  "local-tls-redis-7.0|--impl redis-7.0 --tls --suite all"
  "local-acl-redis-7.0|--impl redis-7.0 --auth acl --suite all"
  "local-tls-valkey-8.0|--impl valkey-8.0 --tls --suite all"
  "local-acl-valkey-8.0|--impl valkey-8.0 --auth acl --suite all"
  "docker-tls-redis-7.0|--backend docker --impl redis-7.0 --tls --suite all"
  "docker-acl-redis-7.0|--backend docker --impl redis-7.0 --auth acl --suite all"
  "docker-tls-valkey-8.0|--backend docker --impl valkey-8.0 --tls --suite all"
  "docker-acl-valkey-8.0|--backend docker --impl valkey-8.0 --auth acl --suite all"
  "regressions-local-redis-6.2|--impl redis-6.2 --suite regressions --repeat RUNS"
  "regressions-local-redis-7.0|--impl redis-7.0 --suite regressions --repeat RUNS"
  "regressions-local-valkey-8.0|--impl valkey-8.0 --suite regressions --repeat RUNS"
  "regressions-local-valkey-8.1|--impl valkey-8.1 --suite regressions --repeat RUNS"
  "regressions-docker-redis-8.0|--backend docker --image TRIXIE --impl redis-8.0 --suite regressions --repeat RUNS"
  "regressions-docker-valkey-8.1|--backend docker --image TRIXIE --impl valkey-8.1 --suite regressions --repeat RUNS"
  "upgrade-local-redis-6.2-to-7.0|upgrade --from redis-6.2 --to redis-7.0 --rollback"
  "upgrade-local-redis-7.0-to-valkey-8.0|upgrade --from redis-7.0 --to valkey-8.0 --rollback"
  "upgrade-local-valkey-8.0-to-8.1|upgrade --from valkey-8.0 --to valkey-8.1 --rollback"
  "upgrade-docker-redis-7.0-to-8.0|upgrade --backend docker --from redis-7.0 --to redis-8.0@TRIXIE --rollback"
  "upgrade-docker-valkey-8.0-to-8.1|upgrade --backend docker --from valkey-8.0 --to valkey-8.1@TRIXIE --rollback"
)

t_all=$SECONDS
for row in "${rows[@]}"; do
  name=${row%%|*}
  # shellcheck disable=SC2053  # the pattern is a glob on purpose
  [[ $name == $only ]] || continue
  read -r -a args <<<"${row#*|}"
  if [[ -n ${SUITE:-} ]]; then
    [[ "${args[*]}" == *"--suite all"* ]] || continue
    for i in "${!args[@]}"; do [[ ${args[i]} == all ]] && args[i]=$SUITE; done
  fi
  cmd=run
  if [[ ${args[0]} == upgrade ]]; then
    cmd=upgrade
    args=("${args[@]:1}")
  fi
  if [[ "${args[*]}" == *TRIXIE* ]]; then
    trixie=${trixie:-$($py -m harness image build --trixie)}
    args=("${args[@]//TRIXIE/$trixie}")
  fi
  args=("${args[@]//RUNS/${RUNS:-5}}")
  t0=$SECONDS
  workers=${WORKERS:-3}
  # regression scenarios race on timing: one at a time, as their rates are measured
  [[ $name == regressions-* ]] && workers=${REGRESSION_WORKERS:-1}
  echo "== matrix $name: python -m harness $cmd ${args[*]} -n $workers" >&2
  if ! $py -m harness "$cmd" "${args[@]}" -n "$workers" --report-dir "reports/matrix/$name"; then
    failed+=("$name")
  fi
  echo "== matrix $name: $((SECONDS - t0)) s" >&2
done
$py scripts/summaries.py reports/matrix
echo "== matrix total: $((SECONDS - t_all)) s"
if ((${#failed[@]})); then
  echo "matrix: failed: ${failed[*]}" >&2
  exit 1
fi
