"""The docker backend's containers and networks, found by label and removed.

Every container and network of a run carries ``org.redis-cluster-harness.run=<run id>``
and ``org.redis-cluster-harness.owner=<pid>:<start time>`` of the harness process.
Ryuk cannot be pulled here, so these functions take the place of the reaper: the run's
cleanup (the owner's teardown, its watchdog, a later run's sweep) calls
:func:`remove_run_resources`, and every new docker backend first calls
:func:`sweep_dead_runs`, which goes by labels alone, whatever the state directory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from harness.errors import HarnessError
from harness.images import docker_client
from harness.images.docker import DOCKER_ERRORS
from harness.runs import proc_start_time

LABEL_RUN = "org.redis-cluster-harness.run"
LABEL_OWNER = "org.redis-cluster-harness.owner"  # "<pid>:<start time>" of the harness process
LABEL_CLUSTER = "org.redis-cluster-harness.cluster"


def remove_resources(client: Any, labels: Mapping[str, str]) -> None:
    """Remove containers, then networks, carrying all of ``labels``."""
    filters = {"label": [f"{k}={v}" for k, v in labels.items() if v]}
    with contextlib.suppress(*DOCKER_ERRORS):
        for c in client.containers.list(all=True, filters=filters):
            with contextlib.suppress(*DOCKER_ERRORS):
                c.remove(force=True, v=True)
    with contextlib.suppress(*DOCKER_ERRORS):
        for net in client.networks.list(filters=filters):
            with contextlib.suppress(*DOCKER_ERRORS):
                net.remove()


def remove_run_resources(run_id: str) -> None:
    """Everything of one run (the cleanup a run notes when it uses Docker)."""
    with contextlib.suppress(HarnessError), contextlib.closing(docker_client()) as client:
        remove_resources(client, {LABEL_RUN: run_id})


def _owner_alive(owner: str) -> bool:
    pid_s, _, start = owner.partition(":")
    try:
        now = proc_start_time(int(pid_s))
    except ValueError:
        return False
    return now is not None and now == start


def sweep_dead_runs(client: Any) -> list[str]:
    """Remove containers and networks of runs whose owner process is gone."""
    dead: set[str] = set()
    with contextlib.suppress(*DOCKER_ERRORS):
        objs: Iterable[Any] = [
            *client.containers.list(all=True, filters={"label": LABEL_RUN}),
            *client.networks.list(filters={"label": LABEL_RUN}),
        ]
        for obj in objs:
            labels = obj.attrs.get("Labels") or (obj.attrs.get("Config") or {}).get("Labels") or {}
            run_id = labels.get(LABEL_RUN)
            if run_id and not _owner_alive(labels.get(LABEL_OWNER, "")):
                dead.add(run_id)
    for run_id in dead:
        remove_resources(client, {LABEL_RUN: run_id})
    return sorted(dead)
