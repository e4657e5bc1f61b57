"""Named risks of a rolling upgrade: read from a node's own log (:func:`classify`), and
foreseen from the versions before a plan runs (:func:`rdb_version`,
:func:`can_replicate`, :func:`foreseen`).

A step that cannot complete is reported as a risk with the log line that proves it and
advice. That way a rehearsal reads "the demoted 7.0 primary cannot resync: RDB 11 > 10"
rather than "timed out". Every pattern below is a line these servers were seen to write
here (Redis 6.2.14 and 7.0.15, Valkey 8.0.1 and 8.1.8; excerpts in
tests/unit/upgrade_logs/) or that their sources contain. The source file is named next
to each pattern. Pure functions, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

Severity = Literal["warning", "unsafe"]
#: a server as a plan names it: (flavor, version), e.g. ("redis", (7, 0, 15))
Endpoint = tuple[str, tuple[int, ...]]


@dataclass(frozen=True)
class Risk:
    """One named risk. ``unsafe``: the step cannot complete, or data is gone.
    ``warning``: the procedure can go on, but something is waiting to fail."""

    name: str
    severity: Severity
    node: str
    evidence: str
    advice: str
    step: int | None = None

    def describe(self) -> str:
        where = f" at step {self.step}" if self.step is not None else ""
        seen = " / ".join(ln.strip() for ln in self.evidence.splitlines() if ln.strip())
        return f"[{self.severity}] {self.name} on {self.node}{where}: {seen[:400]} -> {self.advice}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- versions -----------------------------------------------------------------------

#: RDB format each release writes (src/rdb.h RDB_VERSION in redis 5.0.0 .. 8.0-m01 and
#: valkey 7.2.5 / 8.0.1; valkey 9.0 from the upstream notes). These header values were
#: measured here too: 6.2.14 = 9, 7.0.15 = 10, valkey 8.0.1 and 8.1.8 = 11.
RDB_VERSIONS: dict[tuple[str, tuple[int, int]], int] = {
    ("redis", (5, 0)): 9,
    ("redis", (6, 0)): 9,
    ("redis", (6, 2)): 9,
    ("redis", (7, 0)): 10,
    ("redis", (7, 2)): 11,
    ("redis", (7, 4)): 12,
    ("redis", (8, 0)): 12,
    ("valkey", (7, 2)): 11,
    ("valkey", (8, 0)): 11,
    ("valkey", (8, 1)): 11,
    ("valkey", (9, 0)): 80,
}
#: Valkey leaves 12..79 to Redis's later formats. It cannot read them, not even with
#: `rdb-version-check relaxed` (8.1).
_FOREIGN_TO_VALKEY = range(12, 80)


def rdb_version(flavor: str, version: tuple[int, ...]) -> int | None:
    """The RDB format ``flavor`` ``version`` writes, or None for a release not listed."""
    if len(version) < 2:
        return None
    return RDB_VERSIONS.get((flavor.lower(), (version[0], version[1])))


def reads_rdb(flavor: str, version: tuple[int, ...], rdb: int) -> bool | None:
    """Can ``flavor`` ``version`` load an RDB of format ``rdb``? (rdb.c: a version
    above its own is refused, "Can't handle RDB format version N".)"""
    own = rdb_version(flavor, version)
    if own is None:
        return None
    if rdb > own:
        return False
    return not (flavor.lower() == "valkey" and rdb in _FOREIGN_TO_VALKEY)


def can_replicate(primary: Endpoint, replica: Endpoint) -> bool | None:
    """Can ``replica`` complete a full sync from ``primary``? False across an RDB bump,
    newer to older; None when a version is not listed. (A partial resync, as right after
    ``CLUSTER FAILOVER``, needs no RDB and worked in every measured pair.)"""
    written = rdb_version(*primary)
    return None if written is None else reads_rdb(*replica, written)


def _name(e: Endpoint) -> str:
    return f"{e[0]} {'.'.join(map(str, e[1]))}"


#: what :func:`foreseen` says, by name: severity, evidence, advice ({s}/{t}: the
#: source/target, {sr}/{tr}: their RDB formats)
_FORESEEN: dict[str, tuple[Severity, str, str]] = {
    "rdb-format-bump": (
        "warning",
        "predicted: {t} writes RDB {tr}, {s} reads up to {sr}",
        "a {s} replica cannot full-sync from a {t} primary, and flushes its data before it "
        "finds out. After CLUSTER FAILOVER the demoted primary survives on a partial resync "
        "(measured), but a restart or an overrun backlog flushes it: upgrade each demoted "
        "primary next and never promote a node still on {s}",
    ),
    "rollback-in-place-refused": (
        "unsafe",
        "predicted: {s} wrote RDB {sr}, {t} reads up to {tr}",
        "{t} cannot load a {s} node's files (it exits: 'Fatal error loading the DB'), nor "
        "sync from a {s} primary: going back needs the backup the old version wrote before "
        "the upgrade (SAVE and copy), and loses what was written since",
    ),
    "aof-ignored-on-rollback": (
        "unsafe",
        "measured: 7.0 -> 6.2 with appendonly yes starts with 0 keys and no error ({t} does "
        "not read the appendonlydir/ of {s})",
        "the node comes up empty but owns its slots, and what is written on it is lost "
        "again on re-upgrade (the old manifest wins): roll back from a backup instead",
    ),
    "nodes-conf-shard-id": (
        "warning",
        "measured (redis 7.0 + valkey 8.0.1): CLUSTER SHARDS on the valkey nodes puts a "
        "7.0 primary's valkey replica in a shard of its own, and a valkey primary's "
        "restart exits with 'Unrecoverable error: corrupted cluster config file' on a "
        "shard-id (redis/redis#12761, valkey-io/valkey#2171)",
        "while a shard mixes the versions, do not restart the nodes that keep shard ids; "
        "valkey 8.1.8 reconciles them (measured fine)",
    ),
    "bus-extensions-dropped": (
        "unsafe",
        "measured: 6.2 + 7.0 with cluster-announce-hostname never forms (each side knows "
        "only its own version's nodes; no log line); redis/redis#12685",
        "leave cluster-announce-hostname unset until no 6.x node is left",
    ),
}


def foreseen(
    source: Endpoint, target: Endpoint, *, persistence: str = "none", hostname: bool = False
) -> list[Risk]:
    """What moving a cluster from ``source`` to ``target`` will meet, known from the
    versions alone: for the printed plan (node "plan")."""
    (sf, sv), (tf, tv) = source, target
    pair = {f"{f} {v[0]}.{v[1]}" for f, v in (source, target) if len(v) > 1}
    no_shard_id = any(f == "redis" and v[:2] < (7, 2) for f, v in (source, target))
    names = []
    if can_replicate(target, source) is False:
        names.append("rdb-format-bump")
    if can_replicate(source, target) is False:
        names.append("rollback-in-place-refused")
    multipart_aof = sf == "valkey" or sv[:2] >= (7, 0)  # appendonlydir/ and a manifest
    if persistence == "aof" and multipart_aof and tf == "redis" and tv[:2] < (7, 0):
        names.append("aof-ignored-on-rollback")
    if no_shard_id and pair & {"valkey 7.2", "valkey 8.0", "redis 7.2", "redis 7.4"}:
        names.append("nodes-conf-shard-id")
    if hostname and pair & {"redis 6.0", "redis 6.2"} and "redis 7.0" in pair:
        names.append("bus-extensions-dropped")
    fmt = {"s": _name(source), "t": _name(target)}
    fmt |= {"sr": str(rdb_version(*source)), "tr": str(rdb_version(*target))}
    return [
        Risk(
            n, _FORESEEN[n][0], "plan", _FORESEEN[n][1].format(**fmt), _FORESEEN[n][2].format(**fmt)
        )
        for n in names
    ]


# --- log lines -------------------------------------------------------------------------

_BANNER = re.compile(r"(Redis|Valkey) version=(\d+)\.(\d+)\.(\d+)")  # server.c, at start
_REFUSED = re.compile(r"Can't handle RDB format version (\d+)")  # rdb.c rdbLoadRioWithLoadingCtx
# replication.c readSyncBulkPayload: redis "... MASTER synchronization DB from disk[: err]"
# or "from socket: err"; valkey 8.0 "... PRIMARY synchronization DB from disk, check ..."
_SYNC_FAILED = re.compile(r"Failed trying to load the (MASTER|PRIMARY) synchronization")
_SYNC_STARTED = "REPLICA sync started"  # replication.c connectWithPrimary
_FLUSHED = "sync: Flushing old data"  # replication.c, before the RDB is loaded
_SYNC_LOADING = "REPLICA sync: Loading DB in memory"  # replication.c
# replication.c: the replica had a dataset in sync with its primary before
_WAS_SYNCED = re.compile(r"sync: Finished with success|Successful partial resynchronization")
_AOF_BASE = "Reading RDB base file on AOF loading"  # aof.c loadSingleAppendOnlyFile
_TO_DISK = re.compile(r"sync: receiving .* to disk")  # replication.c, disk-based load
_FATAL_LOAD = re.compile(r"Fatal error loading the DB")  # server.c loadDataFromDisk
# aof.c loadSingleAppendOnlyFile / loadAppendOnlyFiles (7.0+); 6.2 aof.c "Bad file format"
_AOF_FAILED = re.compile(
    r"Error reading the RDB base file \S+, AOF loading aborted"
    r"|Unrecoverable error reading the append only file"
    r"|Bad file format reading the append only file"
)
# rdb.c rdbReportError ("Internal error in RDB reading offset ...") and rdbLoad's abort:
# a format this version accepts, with content it cannot parse
_RDB_BROKEN = re.compile(r"Internal error in RDB reading offset|Short read or OOM loading DB")
# cluster.c clusterLoadConfig (redis: "... config file."), cluster_legacy.c (valkey: the line
# quoted, with the closing quote on the next log line)
_NODES_CONF = re.compile(r"Unrecoverable error: corrupted cluster config file")
# debug.c: sigsegvHandler, _serverAssert, _serverPanic, the bug report banner
_CRASH = re.compile(
    r"crashed by signal: \d+|=== (RECURSIVE )?ASSERTION FAILED ===|Guru Meditation: "
    r"|=== \w+ BUG REPORT START"
)
_ASSERT_DETAIL = re.compile(r"==> \S+:\d+ '.*' is not true")  # debug.c _serverAssertPrint
_BAD_DIRECTIVE = "Bad directive or wrong number of arguments"  # config.c loadServerConfig
_CONFIG_BANNER = re.compile(r"\*\*\* FATAL CONFIG FILE ERROR \((.*)\) \*\*\*")  # config.c
_CONFIG_LINE = re.compile(r">>> '(.*)'")  # config.c: the offending line


#: what :func:`classify` says, by name: severity and advice ({who}: the node, its role
#: and version; {mine}: "RDB 11 > 10"; {rdb}: the refused format)
_LOGGED: dict[str, tuple[Severity, str]] = {
    "rdb-version-refused": (
        "unsafe",
        "{who} cannot sync from its primary ({mine}): upgrade it next, and never promote it "
        "meanwhile (it holds no current data). It retries about every 100 ms, each time "
        "costing the primary a fork and a full RDB transfer",
    ),
    "replica-flushed-before-refusal": (
        "unsafe",
        "{who} emptied its dataset before it refused the RDB{had}. Count it as data lost on "
        "this node; repl-diskless-load swapdb keeps the old (stale) data through a refused "
        "sync (measured on 7.0)",
    ),
    "refused-rdb-left-on-disk": (
        "warning",
        "{who} saved the primary's RDB {rdb} as its dump.rdb (disk-based load) before "
        "refusing it: restarted on its current version it exits with 'Fatal error loading "
        "the DB' (measured). Upgrade it before any restart",
    ),
    "rdb-load-refused": (
        "unsafe",
        "{who} cannot load its dump.rdb ({mine}) and exits (a replica holds the last RDB "
        'its primary sent, even with save ""): an in-place rollback across an RDB bump '
        "is impossible, and it cannot resync from a newer primary either. Put it "
        "back on the version that wrote the file, or start from a backup this version wrote "
        "(SAVE and copy before the upgrade)",
    ),
    "aof-load-refused": (
        "unsafe",
        "{who} cannot load its append-only files{mine} and exits: an in-place rollback is "
        "impossible. Put it back on the version that wrote them, or restore a backup this "
        "version wrote",
    ),
    "rdb-load-failed": (
        "unsafe",
        "{who} cannot parse its RDB (a format it accepts, content it does not): do not "
        "restart it on this version; restore a backup this version wrote",
    ),
    "nodes-conf-refused": ("unsafe", "{who} refuses its nodes.conf and exits: {why}"),
    "server-crashed": (
        "unsafe",
        "{who} crashed{loading}: keep the whole bug report (BUG REPORT START..END) and do "
        "not retry the step blindly. Known: valkey-io/valkey#2341 (8.1 -> 8.0.3 crashed "
        "loading while the cluster bus was busy; not reproduced here with 8.1.8 -> 8.0.1)",
    ),
    "config-directive-unknown": (
        "unsafe",
        "{who} exits at start: '{directive}' is unknown to {banner}. Its config was written "
        "for another version: leave that directive out for it",
    ),
}


_ANY_NODES_CONF = (
    "a file another version wrote, or edited. Restore the file its own version wrote, or "
    "rejoin it as a new node"
)
_SHARD_ID = (
    "a replica and its primary have different shard-ids, as when a Redis < 7.2 primary "
    "(no shard ids) has Valkey 8.0 replicas (measured; redis/redis#12761, "
    "valkey-io/valkey#2171, fixed in 8.1.8). Do not restart such nodes mid-upgrade. To "
    "recover: CLUSTER FORGET it on the others, start it with an empty nodes.conf, add it "
    "back as a replica"
)


@dataclass(frozen=True)
class _Log:
    """A log split in lines, and whose it is."""

    node: str
    who: str  # "n3 (replica), redis 7.0.15", for the advice
    own: Endpoint | None
    lines: list[str]

    def risk(self, name: str, evidence: list[str], **fmt: str) -> Risk:
        severity, advice = _LOGGED[name]
        return Risk(
            name, severity, self.node, "\n".join(evidence), advice.format(who=self.who, **fmt)
        )


def classify(node: str, log_tail: str, *, role: str = "", error: str = "") -> list[Risk]:
    """The risks ``log_tail`` (and ``error``, the failure's text: a config error is
    printed before the log file opens) proves for ``node``. Each name once, with the
    first lines that show it."""
    lines = [ln.rstrip() for ln in (log_tail + "\n" + error).splitlines()]
    own = _own_version(lines)
    who = node + (f" ({role})" if role else "") + (f", {_name(own)}" if own else "")
    log = _Log(node, who, own, lines)
    found: dict[str, Risk] = {}
    for i in range(len(lines)):
        for r in _at(log, i):
            found.setdefault(r.name, r)
    return list(found.values())


def _at(log: _Log, i: int) -> list[Risk]:
    ln = log.lines[i]
    if m := _REFUSED.search(ln):
        return _refusal(log, i, int(m.group(1)))
    if _AOF_FAILED.search(ln) and not any(_REFUSED.search(p) for p in log.lines[max(0, i - 2) : i]):
        return [log.risk("aof-load-refused", [ln], mine="")]
    if _RDB_BROKEN.search(ln):
        return [log.risk("rdb-load-failed", [ln])]
    if _NODES_CONF.search(ln):
        closing = log.lines[i + 1 : i + 2] if log.lines[i + 1 : i + 2] == ['".'] else []
        why = _SHARD_ID if "shard-id=" in ln else _ANY_NODES_CONF
        return [log.risk("nodes-conf-refused", [ln, *closing], why=why)]
    if _CRASH.search(ln):
        near = log.lines[i + 1 : i + 40]
        detail = [d for d in near if _CRASH.search(d) or _ASSERT_DETAIL.search(d)][:2]
        loading = " while loading its data" if _loading_at(log.lines, i) else ""
        return [log.risk("server-crashed", [ln, *detail], loading=loading)]
    if _BAD_DIRECTIVE in ln:
        before = [b for b in log.lines[max(0, i - 4) : i] if b.strip()]
        line = next((m.group(1) for b in before if (m := _CONFIG_LINE.search(b))), "?")
        banner = next((m.group(1) for b in before if (m := _CONFIG_BANNER.search(b))), "")
        return [
            log.risk(
                "config-directive-unknown",
                [*before, ln],
                directive=(line.split() or ["?"])[0],
                banner=banner or "this version",
            )
        ]
    return []


def _refusal(log: _Log, i: int, rdb: int) -> list[Risk]:
    """A "Can't handle RDB format version N" in a sync, at start-up from dump.rdb, or
    from an AOF's RDB base: the lines around it say which."""
    lines = log.lines
    reads = rdb_version(*log.own) if log.own else None
    mine = f"RDB {rdb} > {reads}" if reads is not None else f"RDB {rdb}"
    before, after = lines[max(0, i - 3) : i], lines[i + 1 : i + 3]
    failed = [a for a in after if _SYNC_FAILED.search(a)]
    if failed or any(_SYNC_LOADING in b for b in before):
        attempts = sum(1 for ln in lines if _SYNC_FAILED.search(ln))
        times = [f"(refused {attempts} times)"] if attempts > 1 else []
        out = [log.risk("rdb-version-refused", [lines[i], *failed[:1], *times], mine=mine)]
        start = _attempt_start(lines, i)
        attempt = lines[start:i]
        if flush := [ln for ln in attempt if _FLUSHED in ln]:
            had = any(_WAS_SYNCED.search(ln) for ln in lines[:start])
            gone = " (it had been in sync: its data is gone)" if had else ""
            out.append(log.risk("replica-flushed-before-refusal", [flush[0], lines[i]], had=gone))
        if any(_TO_DISK.search(ln) for ln in attempt):
            out.append(log.risk("refused-rdb-left-on-disk", [lines[i]], rdb=str(rdb)))
        return out
    if (aof := [a for a in after if _AOF_FAILED.search(a)]) or any(_AOF_BASE in b for b in before):
        return [log.risk("aof-load-refused", [lines[i], *aof], mine=f" ({mine})")]
    if fatal := [a for a in after if _FATAL_LOAD.search(a)]:
        return [log.risk("rdb-load-refused", [lines[i], *fatal], mine=mine)]
    return []  # cut off before the line that says where: the next refusal will


def _own_version(lines: list[str]) -> Endpoint | None:
    for ln in reversed(lines):
        if m := _BANNER.search(ln):
            return m.group(1).lower(), (int(m.group(2)), int(m.group(3)), int(m.group(4)))
    return None


def _attempt_start(lines: list[str], i: int) -> int:
    """Where the sync attempt that ends at line ``i`` began."""
    for j in range(i - 1, max(-1, i - 40), -1):
        if _SYNC_STARTED in lines[j] or _REFUSED.search(lines[j]):
            return j
    return max(0, i - 40)


def _loading_at(lines: list[str], i: int) -> bool:
    """Was the node loading its data at line ``i`` (rdb.c "Loading RDB produced by",
    aof.c "Reading RDB base file", no "Done loading RDB" since)?"""
    for ln in reversed(lines[:i]):
        if "Done loading RDB" in ln or "DB loaded from" in ln:
            return False
        if "Loading RDB produced by" in ln or "Reading RDB base file" in ln:
            return True
    return False
