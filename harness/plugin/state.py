"""The plugin's per-session state and the stash keys its modules share."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from harness.backends import resolve_implementation
from harness.impl import Implementation
from harness.plugin.shared import ClusterPool
from harness.report import TestResult, now_iso
from harness.security import PLAIN, Auth, Security
from harness.workload import Engine


@dataclass
class HarnessState:
    """Per-session state, kept in ``config.stash``."""

    impl_name: str | None
    impl_binary: str | None
    image: str | None
    backend: str
    node_timeout_ms: int
    seed: int
    report_dir: Path
    report_dir_given: bool
    workload_engine: Engine = "redis-py"
    nodes: str | None = None  # --nodes of the external backend
    allow_destructive: bool = False
    #: before every workload key: spread over slots (no hash tag), unique to this run
    key_prefix: str = field(default_factory=lambda: f"harness:{uuid.uuid4().hex[:12]}:")
    auth: Auth = "none"  # defaults of @pytest.mark.cluster(auth=, password=, tls=)
    password: str | None = None
    tls: bool = False
    #: how to reach an external cluster (--password, --user, --tls-ca-cert, ...)
    access: Security = PLAIN
    #: tests marked shares_cluster take turns on pooled clusters (--no-shared-clusters: off)
    shared_clusters: bool = True
    pool: ClusterPool | None = None
    #: --server-arg of the run: before a test's own server_args on every cluster
    server_args: tuple[tuple[str, str], ...] = ()
    #: the upgrade suite's --upgrade-* options (:mod:`harness.plugin.upgrade`)
    upgrade: dict[str, Any] = field(default_factory=dict)
    #: --repeat: runs of each regression scenario (:mod:`harness.plugin.regression`)
    repeat: int = 1
    impl: Implementation | None = None
    #: the implementation a worker process reported (pytest-xdist controller)
    impl_meta: dict[str, Any] | None = None
    pool_notes: list[str] = field(default_factory=list)  # shared clusters a test changed
    used: bool = False
    started: str = field(default_factory=now_iso)
    results: dict[str, TestResult] = field(default_factory=dict)

    def implementation(self) -> Implementation:
        if self.impl is None:
            self.impl = resolve_implementation(
                self.impl_name, self.impl_binary, self.image, self.backend, self.nodes, self.access
            )
        return self.impl

    def implementation_meta(self) -> dict[str, Any] | None:
        """The implementation as summary.json names it (None: no test used a cluster)."""
        if self.impl is None:
            return self.impl_meta
        i = self.impl
        return {"name": i.name, "flavor": i.flavor, "version": i.version_str, "binary": i.binary}

    def describe(self) -> str:
        what = (
            self.impl.describe() if self.impl else (self.impl_name or self.impl_binary or "default")
        )
        where = f" at {self.nodes}" if self.nodes else ""
        timeout = "the cluster's" if self.nodes else f"{self.node_timeout_ms} ms"
        return (
            f"{what}; backend {self.backend}{where}; node timeout {timeout}; "
            f"seed {self.seed}; workload engine {self.workload_engine}"
            + (f"; auth {self.auth}" if self.auth != "none" or self.password else "")
            + ("; tls" if self.tls or self.access.tls else "")
        )


STATE = pytest.StashKey[HarnessState]()
