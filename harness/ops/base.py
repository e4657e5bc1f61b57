"""What every operation shares: the one way an operation is recorded on the timeline,
persistent control connections for the many commands a migration sends, and the
default deadline of an operation's waits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

import redis

from harness import wait
from harness.clitool import second_opinion as cli_check
from harness.ops.slots import MigrationError

if TYPE_CHECKING:
    from harness.backends import Node
    from harness.cluster import Cluster


class Step:
    """One recorded operation: set :attr:`result` to what the ``-done`` event says."""

    def __init__(self, action: str, node: str) -> None:
        self.action = action
        self.node = node
        self.result = ""
        #: the operation waited until every node agrees (False: it returned earlier on
        #: purpose, so the server's own check would only see it unfinished)
        self.whole = True


@contextmanager
def recorded(cluster: Cluster, action: str, node: str, detail: str = "") -> Iterator[Step]:
    """Record ``action`` just before it happens (``ahead``: in the nodes' logs first, as
    faults are), then ``<action>-done`` with the step's result, or ``<action>-failed`` with
    the error's first line. The first event stays either way: a half-done operation is
    on the timeline as what it is."""
    step = Step(action, node)
    cluster.record(action, node, detail, ahead=True)
    depth = getattr(cluster, _DEPTH, 0)
    setattr(cluster, _DEPTH, depth + 1)
    try:
        yield step
    except BaseException as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        with suppress(Exception):  # the error itself is what matters
            cluster.record(f"{action}-failed", node, f"{type(exc).__name__}: {first}"[:200])
        raise
    finally:
        setattr(cluster, _DEPTH, depth)
    cluster.record(f"{action}-done", node, step.result)
    if depth == 0 and action in WHOLE_AFTER and step.whole and cluster.cli_check:
        second_opinion(cluster, action)


_DEPTH = "_ops_depth"  # operations inside operations: only the outermost is checked
#: operations that leave the cluster whole (covered, agreed, nothing open) when they end
WHOLE_AFTER = frozenset(
    {"add-master", "add-replica", "migrate-slots", "migrate-finish", "rebalance", "remove-node"}
)


def second_opinion(cluster: Cluster, action: str) -> None:
    """After an operation the harness saw complete, ``--cluster check`` by the
    implementation's own tool (where one exists here: :mod:`harness.clitool`) must agree
    that every slot is covered, the nodes agree and nothing is open; a disagreement is an
    error naming both opinions. Nodes it cannot reach (a fault under way) are not one."""
    verdict = cli_check(cluster)
    if verdict is None:
        return
    wrong = verdict.covered is False or verdict.agree is False
    if wrong or verdict.open_slots or verdict.multiple_owners:
        raise MigrationError(
            f"{action} completed as the harness sees it, but the server's own "
            f"--cluster check says: {verdict.describe()}"
        )


def deadline_s(cluster: Cluster, timeout: float | None) -> float:
    """An operation's waits: the given timeout, else the cluster's own recovery bound
    (derived from its node timeout and measured bring-up: a busy machine is slower)."""
    return timeout if timeout is not None else cluster.recovery_s()


class Clients:
    """Open control connections to the nodes for the duration of an operation (a slot
    migration sends several commands per slot: one connection each would dominate), and
    :meth:`pipelined`, which spreads a long run of commands over a few connections. Each
    call tells the test's deadline (:mod:`harness.deadline`) that it may block up to the
    connections' timeout: an operation of many steps may take long, a stuck step not."""

    #: connections a long run of commands is spread over: a primary that replicates
    #: SETSLOT (Valkey 8+) answers each only once its replicas acknowledged it, so one
    #: connection would wait for those acknowledgements one after the other
    LANES = 8

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._open: dict[tuple[Node, int], redis.Redis] = {}
        self._pool: ThreadPoolExecutor | None = None

    def __call__(self, node: Node, lane: int = 0) -> redis.Redis:
        c = self._open.get((node, lane))
        if c is None:
            c = self._open[node, lane] = node.client(self.timeout)
        return c

    def pipelined(self, node: Node, commands: Sequence[Sequence[object]]) -> list[object]:
        """Every command's reply, in order (an error reply as its exception); commands
        on different lanes may run in any order relative to each other."""
        lanes = min(self.LANES, max(1, len(commands) // 16))
        size = -(-len(commands) // lanes)
        parts = [commands[i : i + size] for i in range(0, len(commands), size)]

        wait.announce(self.timeout)  # each round trip is bounded by the connections' timeout

        def run(lane: int) -> list[object]:
            pipe = self(node, lane).pipeline(transaction=False)
            for cmd in parts[lane]:
                pipe.execute_command(*cmd)  # type: ignore[no-untyped-call]
            try:
                return list(pipe.execute(raise_on_error=False))
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                self.drop(node, lane)
                raise

        if len(parts) <= 1:
            return run(0) if parts else []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.LANES, thread_name_prefix="harness-ops")
        return [r for part in self._pool.map(run, range(len(parts))) for r in part]

    def run(self, node: Node, *args: object) -> object:
        """One command; a broken connection is dropped so the next call reconnects."""
        wait.announce(self.timeout)  # a long operation's test deadline follows its steps
        try:
            return self(node).execute_command(*args)  # type: ignore[no-untyped-call]
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            self.drop(node)
            raise

    def drop(self, node: Node, lane: int = 0) -> None:
        c = self._open.pop((node, lane), None)
        if c is not None:
            with suppress(Exception):
                c.close()

    def close(self) -> None:
        for node, lane in list(self._open):
            self.drop(node, lane)
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
