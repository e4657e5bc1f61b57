"""The ``upgrade`` fixture: rolling-upgrade rehearsals (:mod:`harness.upgrade`) with the
run's ``--upgrade-*`` options, their results on the test's properties (gathered into
``summary.json`` and the report page) and in its artifacts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from harness import progress
from harness.cluster import Cluster
from harness.errors import HarnessError
from harness.impl import Implementation
from harness.plugin.fixtures import ClusterFactory, WorkloadFactory, artifact_dir
from harness.plugin.state import HarnessState
from harness.upgrade.endpoints import resolve_endpoint
from harness.upgrade.plan import PlanKind
from harness.upgrade.rehearse import Rehearsal, plan_for, rehearse
from harness.upgrade.summary import PROPERTY
from harness.workload import Workload


class Upgrade:
    """A rehearsal factory: ``upgrade.rehearse("in-place")`` starts a cluster on the
    source implementation (the run's shape and settings), carries out the plan under a
    recorded workload, optionally rehearses the way back, and records the outcome."""

    def __init__(
        self,
        item: pytest.Item,
        state: HarnessState,
        source: Implementation,
        target: Implementation,
        clusters: ClusterFactory,
        workload: WorkloadFactory,
    ) -> None:
        self.item = item
        self.state = state
        self.source = source
        self.target = target
        self.clusters = clusters
        self.workload = workload
        opts = state.upgrade
        masters, _, replicas = str(opts.get("upgrade_shape") or "3x1").partition("x")
        if not (masters.isdigit() and replicas.isdigit() and int(masters) >= 1):
            raise pytest.UsageError(
                f"--upgrade-shape {opts.get('upgrade_shape')}: give MxR, e.g. 3x1"
            )
        self.masters, self.replicas = int(masters), int(replicas)
        self.persistence: str = opts.get("upgrade_persistence") or "none"
        self.plan: str | None = opts.get("upgrade_plan")
        self.rollback: bool = bool(opts.get("rollback"))

    def start(self, **settings: Any) -> Cluster:
        settings.setdefault("masters", self.masters)
        settings.setdefault("replicas", self.replicas)
        settings.setdefault("persistence", self.persistence)
        return self.clusters(impl=self.source, **settings)

    def rehearse(self, kind: PlanKind, *, rollback: bool = False, **settings: Any) -> Rehearsal:
        cluster = self.start(**settings)
        plan = plan_for(cluster, self.target, kind)
        progress.phase(plan.render().splitlines()[0])
        print(plan.render())  # the plan as it will run (shown with -s, kept in the log)
        try:
            out = rehearse(cluster, self.target, plan, self._load("up"))
            if rollback:
                back = plan_for(cluster, self.source, kind)
                print(back.render())
                out.rollback = rehearse(cluster, self.source, back, self._load("back"))
        except HarnessError as exc:  # the harness's own trouble: an error, not a verdict
            raise pytest.fail.Exception(f"{type(exc).__name__}: {exc}", pytrace=False) from None
        self._keep(kind, out)
        return out

    def _load(self, phase: str) -> Callable[[Cluster], Workload]:
        def make(cluster: Cluster) -> Workload:
            # every write is acknowledged or not, and read back at the end: the set
            # workload; its own keys per phase, so each phase is judged on its own
            return self.workload(
                cluster,
                kind="set",
                clients=4,
                rate=400.0,
                prefix=f"{self.state.key_prefix}{phase}:",
            )

        return make

    def _keep(self, kind: str, out: Rehearsal) -> None:
        data = out.to_json()
        self.item.user_properties.append((PROPERTY, json.dumps(data)))
        folder = artifact_dir(self.state, self.item.nodeid)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"upgrade-{kind}.json").write_text(json.dumps(data, indent=1))
        (folder / f"upgrade-{kind}.txt").write_text(
            out.plan.render() + "\n\n" + out.table() + "\n\n" + out.summary() + "\n"
        )


@pytest.fixture
def upgrade(
    request: pytest.FixtureRequest,
    harness_state: HarnessState,
    cluster_factory: ClusterFactory,
    workload: WorkloadFactory,
) -> Upgrade:
    """Rehearsals of ``--upgrade-from`` (default ``--impl``) -> ``--upgrade-to`` with the
    run's ``--upgrade-shape`` / ``--upgrade-persistence`` / ``--server-arg``; skips
    without ``--upgrade-to``."""
    state = harness_state
    opts = state.upgrade
    if not opts.get("upgrade_to"):
        pytest.skip("no --upgrade-to: `python -m harness upgrade --from A --to B` rehearses A -> B")
    try:
        target = resolve_endpoint(opts["upgrade_to"], state.backend, "--upgrade-to")
        given = opts.get("upgrade_from")
        source = (
            resolve_endpoint(given, state.backend, "--upgrade-from")
            if given
            else state.implementation()
        )
    except HarnessError as exc:
        raise pytest.UsageError(str(exc)) from None
    return Upgrade(request.node, state, source, target, cluster_factory, workload)
