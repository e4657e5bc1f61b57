"""Command line: ``python -m harness up|run|soak|upgrade|compare|report|impls|acl-setuser|
image|toxiproxy|report-html`` (or ``redis-cluster-harness ...``).

``up`` gives a developer a cluster to poke at; ``run`` drives the suites through pytest
so CI needs one command and gets an exit status, a JUnit file and ``summary.json``. Both
work from any directory: the suites and profiles are found in the installed package (or
the checkout it runs from, :mod:`harness.shipped`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from harness import impl as impls
from harness import options, pagecmds
from harness import upgradecmd as upgrade_cmd
from harness.backends import get_backend, resolve_implementation
from harness.errors import HarnessError, UsageError
from harness.options import Layer
from harness.security import ACL_USER, acl_setuser
from harness.shipped import data_dir
from harness.spec import ClusterSpec


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _int_range(lo: int, hi: int, what: str) -> type[int]:
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be a whole number, got {text!r}"
            ) from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be in {lo}..{hi}, got {v}")
        return v

    return parse  # type: ignore[return-value]


def _table_args(
    p: argparse.ArgumentParser,
    layer: Layer,
    helps: Mapping[str, str] | None = None,
    skip: tuple[str, ...] = (),
) -> None:
    """The flags of ``layer`` from the option table; read as text, checked in :func:`main`.
    ``helps`` replaces the help of options that mean something else here; ``skip``: the
    command's own flags of the same name."""
    for opt in options.for_layer(layer):
        if opt.name in skip:
            continue
        text = (helps or {}).get(opt.name, opt.help_text)
        if opt.switch:
            p.add_argument(opt.flag, dest=opt.name, action="store_true", default=None, help=text)
            continue
        p.add_argument(
            opt.flag,
            dest=opt.name,
            metavar=opt.metavar_text,
            help=text,
            action="append" if opt.repeat else "store",
        )


_SOAK_HELPS = {
    "seed": "the soak's seed: each run's seed is drawn from it, so the same seed replays "
    "the soak (default: random, printed)",
    "report_dir": "where soak.json and each run's report (run-1/ ...) go (default: reports/soak)",
}
_SOAK_OWN = ("seed", "report_dir", "repeat")  # the soak's, not passed on to each run


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m harness", description=__doc__.splitlines()[0] if __doc__ else None
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="start a cluster, print its endpoints, tear it down on Ctrl-C")
    _table_args(up, "up")

    run = sub.add_parser("run", help="run the suites through pytest; exit 0 only if nothing failed")
    _table_args(run, "run")
    run.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")

    soak = sub.add_parser(
        "soak",
        help="`run` N times with a new seed each; per test: outcomes, the seeds and reasons "
        "of failures, metric spread; exit 0 only if nothing failed but known issues",
    )
    soak.add_argument(
        "--repeat",
        type=_int_range(1, 100_000, "--repeat"),
        default=10,
        metavar="N",
        help="number of runs (default 10)",
    )
    soak.add_argument(
        "--cpu-hog",
        type=_int_range(0, 1024, "--cpu-hog"),
        default=0,
        metavar="N",
        help="N busy workers (stress-ng --cpu N) beside the runs, for a loaded machine "
        "(default 0: none)",
    )
    # (the soak's --repeat counts runs: a run's own --repeat goes after `--`)
    _table_args(soak, "run", helps=_SOAK_HELPS, skip=("repeat",))
    soak.add_argument(
        "pytest_args", nargs="*", help="extra pytest arguments (after --), passed to each run"
    )

    upgrade_cmd.add_parser(sub, _table_args)

    page = sub.add_parser("report-html", help="(re)build DIR/index.html from a run's report DIR")
    page.add_argument("dir", type=Path, metavar="DIR", help="a report directory (summary.json)")

    listing = sub.add_parser(
        "impls", help="list implementation profiles and which are installed here"
    )
    _table_args(listing, "impls")

    acl = sub.add_parser(
        "acl-setuser",
        help="print the ACL SETUSER command that makes the harness's user on a cluster "
        "it did not start (run it on every node)",
    )
    _table_args(acl, "acl-setuser")

    image = sub.add_parser("image", help="container images for --backend docker")
    image_sub = image.add_subparsers(dest="image_command", required=True, parser_class=_Parser)
    build = image_sub.add_parser("build", help="build an image here, without a registry")
    src = build.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--from-binary", metavar="PATH", help="pack this server binary and its libraries"
    )
    src.add_argument(
        "--trixie",
        action="store_true",
        help="Debian trixie root filesystem with redis-server (8.0) and valkey-server (8.1)",
    )
    build.add_argument(
        "--tag", metavar="NAME:TAG", help="image name (default derived from the input)"
    )

    tox = sub.add_parser(
        "toxiproxy", help="serve the embedded Toxiproxy-compatible API until Ctrl-C"
    )
    tox.add_argument("--host", default="127.0.0.1")
    tox.add_argument("--port", type=_int_range(1, 65535, "--port"), default=8474)
    tox.add_argument("--config", metavar="FILE", help="JSON list of proxies to create at start")
    tox.add_argument(
        "--seed", type=_int_range(0, 2**63 - 1, "--seed"), help="seed for toxicity draws"
    )
    pagecmds.add_commands(sub)  # compare, report
    return parser


def cmd_up(args: argparse.Namespace) -> int:
    from harness.cluster import Cluster

    if args.backend == "external":
        raise UsageError(
            "`up` starts a cluster; check a running one with `run --backend external --nodes ...`"
        )
    impl = resolve_implementation(args.impl, args.impl_binary, args.image, args.backend)
    spec = ClusterSpec(
        **{o.name: getattr(args, o.name) for o in options.for_layer("marker") if "up" in o.layers}
    )
    ports = list(range(args.port, args.port + spec.size)) if args.port else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    with Cluster.start(impl, spec, backend=args.backend, ports=ports) as cluster:
        print(f"cluster ready in {cluster.bringup_ms:.0f} ms: {cluster.describe()}")
        for n in cluster.nodes:
            role = (
                "master"
                if n in cluster.initial_masters
                else f"replica of {cluster.initial_master_of(n).addr}"
            )
            print(f"  {role:28} {n.description}")
        first = cluster.nodes[0]
        extra = "".join(f" {shlex.quote(a)}" for a in cluster.security.cli_args())
        print(f"connect: redis-cli -c -h {first.host} -p {first.port}{extra}")
        print("press Ctrl-C to stop and remove the cluster", flush=True)
        stop.wait()
        print("stopping...", flush=True)
    return 0


def _preflight(args: argparse.Namespace) -> list[str]:
    """What ``run`` checks before pytest starts (a bad option fails here, in one line);
    the suite directories to run."""
    from harness.backends.access import security_for

    get_backend(args.backend)
    # fail fast, in one line, before pytest starts
    access = security_for(vars(args))
    impl = resolve_implementation(
        args.impl, args.impl_binary, args.image, args.backend, args.nodes, access
    )
    if args.backend == "docker":
        from harness.images import preflight

        preflight(impl)
    suites_root = data_dir("suites")
    paths = [str(suites_root / s) for s in options.SUITES[args.suite]]
    missing = [p for p in paths if not Path(p).is_dir()]
    if missing:
        raise HarnessError(f"suites not found at {missing[0]}; reinstall redis-cluster-harness")
    return paths


def cmd_run(args: argparse.Namespace) -> int:
    import pytest

    paths = _preflight(args)
    suites_root = data_dir("suites")
    report_dir = Path(args.report_dir or "reports").absolute()
    # the suites' own settings (run.ini), installed or in a checkout, and none of the
    # caller's: no ini file or conftest.py of the directory (or of the project the harness
    # happens to be installed in) above the suites
    top = str(suites_root.parent)
    argv = [*paths, "-c", str(suites_root / "run.ini"), "--rootdir", top, "--confcutdir", top]
    argv += ["--junitxml", str(report_dir / "junit.xml")]
    argv += ["-W", "ignore::pytest.PytestAssertRewriteWarning"]
    for opt in options.for_layer("run"):  # the run options pytest takes too, passed on
        if "pytest" in opt.layers:
            value = str(report_dir) if opt.name == "report_dir" else getattr(args, opt.name)
            argv += opt.to_text(value)
    if args.workers not in (None, "0", "1"):  # pytest-xdist; shared clusters: loadgroup
        argv += ["-n", _workers(args.workers)]
    code = int(pytest.main([*argv, *args.pytest_args]))
    if (report_dir / "index.html").is_file():  # the last line: where to look
        print(f"report: {report_dir / 'index.html'}")
    return 0 if code == 0 else (code or 1)


def _workers(text: str) -> str:
    if text in ("auto", "logical") or (text.isdigit() and 0 < int(text) <= 64):
        return text
    raise UsageError(f"-n {text}: use a number of processes 1..64 or auto")


def run_options_text(given: Mapping[str, Any]) -> list[str]:
    """The ``run`` options the user gave (their text, before checking), except the soak's
    own, as arguments for each run."""
    argv: list[str] = []
    for opt in options.for_layer("run"):
        text = given.get(opt.name)
        if opt.name in _SOAK_OWN or text is None or text is False:
            continue
        if opt.switch:
            argv.append(opt.flag)
        elif isinstance(text, list | tuple):
            argv += [a for t in text for a in (opt.flag, str(t))]
        else:
            argv += [opt.flag, str(text)]
    return argv


def cmd_soak(args: argparse.Namespace, given: Mapping[str, Any]) -> int:
    from harness.soakrun import hog_tool, soak

    _preflight(args)
    if args.cpu_hog:
        hog_tool()  # missing: one line now, not after the first run
    report_dir = Path(args.report_dir or "reports/soak").absolute()
    return soak(
        args.repeat,
        run_options_text(given),
        args.pytest_args,
        report_dir,
        soak_seed=args.seed,
        hog_workers=args.cpu_hog,
        echo=lambda line: print(line, flush=True),
    )


def cmd_impls() -> int:
    for name, profile in impls.load_profiles().items():
        try:
            found = impls.from_name(name).describe()
        except HarnessError:
            found = "not installed"
        mine = f"  [{profile.source}]" if profile.source else ""
        print(f"{name:12} {profile.flavor} {profile.versions:14} {found}{mine}")
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    from harness import images

    if args.trixie:
        ref = images.build_trixie_image(tag=args.tag or images.TRIXIE_TAG)
    else:
        ref = images.build_from_binary(args.from_binary, tag=args.tag)
    print(ref)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    given = dict(vars(args))  # the text the user gave, before checking
    try:
        if args.command in ("up", "run", "impls", "acl-setuser"):  # flags arrive as text
            vars(args).update(options.from_text(args.command, vars(args)))
        if args.command == "soak":  # `run`'s options, with the same checks
            runs = args.repeat  # the soak's own --repeat (a run's goes after `--`)
            vars(args).update(options.from_text("run", {**vars(args), "repeat": None}))
            args.repeat = runs
        if args.command == "acl-setuser":
            print(acl_setuser(args.user or ACL_USER, args.password or "PASSWORD"))
            return 0
        if args.command == "upgrade":  # checked as `run`'s, which it runs
            vars(args).update(upgrade_cmd.checked(vars(args)))
        if args.command in ("up", "run", "soak", "impls", "upgrade"):
            impls.use_profiles(args.profiles)  # a mistake in them stops here
        if args.command == "up":
            return cmd_up(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "soak":
            return cmd_soak(args, given)
        if args.command == "upgrade":
            return upgrade_cmd.run(args, given, cmd_run)
        if args.command == "image":
            return cmd_image(args)
        if args.command == "report-html":
            from harness.htmlreport import build

            print(build(args.dir))
            return 0
        if args.command in ("compare", "report"):
            return pagecmds.run(args)
        if args.command == "toxiproxy":
            from harness.toxiproxy import main as serve

            return serve(args.host, args.port, config=args.config, seed=args.seed)
        return cmd_impls()
    except HarnessError as exc:
        for line in str(exc).splitlines():  # a line per mistake (profiles: all of them)
            print(f"harness: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `impls | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())
