"""``python -m harness upgrade --from A --to B``: the upgrade suite (``suites/upgrade``)
through ``run``, with the rehearsal's own flags named as an operator says them; and
``--dry-run``, which prints the plans for the shape and starts nothing."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness import options
from harness.errors import UsageError
from harness.impl import Implementation
from harness.upgrade.endpoints import resolve_endpoint
from harness.upgrade.plan import PLANS, SAFE_PLANS, PlanKind, Shard, make_plan
from harness.upgrade.rehearse import with_foreseen
from harness.upgrade.risks import can_replicate

#: the flags of ``upgrade`` -> the ``run`` option each one is
OWN = {
    "--from": "upgrade_from",
    "--to": "upgrade_to",
    "--plan": "upgrade_plan",
    "--shape": "upgrade_shape",
    "--persistence": "upgrade_persistence",
    "--rollback": "rollback",
}


def add_parser(sub: Any, table_args: Callable[[argparse.ArgumentParser, Any], None]) -> None:
    p = sub.add_parser(
        "upgrade",
        help="rehearse a rolling upgrade from one server version to another under load, "
        "checked after every step; exit 0 only if the procedure was safe",
    )
    for flag, name in OWN.items():
        opt = options.OPTION[name]
        text = opt.help_text.removeprefix("upgrade suite: ")
        if opt.switch:
            p.add_argument(flag, dest=name, action="store_true", default=None, help=text)
        else:
            p.add_argument(flag, dest=name, metavar=opt.metavar_text, help=text)
    p.add_argument(
        "--dry-run", action="store_true", help="print the plan(s) for the shape and exit"
    )
    table_args(p, "upgrade")
    p.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")


def as_run(given: Mapping[str, Any]) -> dict[str, Any]:
    """The ``run`` options' text for this ``upgrade`` command line."""
    out = {o.name: given.get(o.name) for o in options.for_layer("run")}
    out["suite"] = "upgrade"
    return out


def checked(given: Mapping[str, Any]) -> dict[str, Any]:
    """The options checked as ``run``'s, a mistake named by this command's own flag."""
    try:
        return options.from_text("run", as_run(given))
    except UsageError as exc:
        text = str(exc)
        for flag, name in OWN.items():
            text = text.replace(options.OPTION[name].flag + " ", flag + " ", 1)
        raise UsageError(text) from None


def run(args: argparse.Namespace, given: Mapping[str, Any], cmd_run: Callable[..., int]) -> int:
    if not args.upgrade_from or not args.upgrade_to:
        raise UsageError("upgrade: give both --from and --to (a profile, a binary or an image)")
    source = resolve_endpoint(args.upgrade_from, args.backend, "--from")
    target = resolve_endpoint(args.upgrade_to, args.backend, "--to")
    if args.dry_run:
        print(
            dry_run(
                args.upgrade_shape,
                args.upgrade_plan,
                args.upgrade_persistence,
                source,
                target,
                args.server_args,
            )
        )
        return 0
    # the run's implementation is the source (its preflight checks it, its report names it)
    if source.image is not None:
        args.image, args.impl = source.image, source.name
    elif args.upgrade_from in options_profiles():
        args.impl = source.name
    else:
        args.impl_binary = source.binary
    return cmd_run(args)


def options_profiles() -> set[str]:
    from harness.impl import load_profiles

    return set(load_profiles())


def dry_run(
    shape: str,
    kind: str | None,
    persistence: str,
    source: Implementation,
    target: Implementation,
    server_args: Sequence[tuple[str, str]] = (),
) -> str:
    """The plans as they would run on a fresh cluster of ``shape`` (nodes named as the
    harness forms them: masters first, replica i follows master i mod masters), with
    what the two versions are known to meet."""
    m, _, r = shape.partition("x")
    masters, replicas = int(m), int(r)
    names = [f"n{masters + i}" for i in range(masters * replicas)]
    shards = [
        Shard(f"n{i}", tuple(n for j, n in enumerate(names) if j % masters == i))
        for i in range(masters)
    ]
    kinds: tuple[PlanKind, ...] = (kind,) if kind in PLANS else SAFE_PLANS  # type: ignore[assignment]
    plans = [
        with_foreseen(
            make_plan(
                k,
                shards,
                source=f"{source.flavor} {source.version_str}",
                target=f"{target.flavor} {target.version_str}",
                persistence=persistence,
                replica_can_sync_from_target=can_replicate(
                    (target.flavor, target.version), (source.flavor, source.version)
                ),
            ),
            source,
            target,
            persistence,
            server_args,
        )
        for k in kinds
    ]
    return "\n\n".join(p.render() for p in plans)
