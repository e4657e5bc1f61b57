"""Live progress on the terminal: each running test's phase, elapsed time, op counts
and the seed, from the library's hub (:mod:`harness.progress`).

- On a terminal: a compact status line below pytest's own line (one per xdist worker),
  drawn with ``rich``, redrawn in place and cleared before pytest writes anything.
- Not a terminal (a CI log): plain timestamped lines, no cursor codes; every phase
  change, and op counts at most every few seconds (:class:`harness.progress.RateLimit`).
- ``--progress auto`` (the default) shows it unless ``-q``; ``on`` always; ``off`` never.
- pytest-xdist: a worker's output never reaches the terminal, so each worker appends its
  updates as JSON lines to a file of its own in a directory the controller made, and the
  controller tails them in a thread. The directory goes at the end of the session.

Progress is written to a duplicate of the terminal's file descriptor taken before any
test ran: during a test pytest captures fd 1, and progress must pass that capture
without suspending it (which is not safe from another thread).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

import pytest

from harness import progress
from harness.plugin import workers
from harness.progress import HUB, Counts, RateLimit, Update, plain_line, short_test
from harness.runs import state_dir

INPUT = "harness_progress"  # workerinput: the directory workers write to
TICK_TTY_S = 0.5
TICK_PLAIN_S = 1.0


def wanted(choice: str | None, verbose: int) -> bool:
    """``--progress``: auto shows it unless ``-q``."""
    if choice == "off":
        return False
    return choice == "on" or verbose >= 0


class Screen:
    """The terminal as progress shares it with pytest: writes under a lock that pytest's
    own writing holds too (:meth:`pytest_writes`), a status drawn below pytest's current
    line and cleared again (TTY), or whole lines (plain)."""

    def __init__(self, config: pytest.Config, tty: bool) -> None:
        self.config = config
        self.tty = tty
        self.lock = threading.RLock()
        self.status: list[str] = []
        self.shown = 0  # status lines on the screen now
        self._broken = ""  # pytest's line that a plain line already ended
        self.file: IO[str] = sys.stdout
        self.fd: int | None = None
        with contextlib.suppress(AttributeError, OSError, io.UnsupportedOperation):
            self.fd = os.dup(self.file.fileno())

    @property
    def tr(self) -> Any:  # registered after this plugin's pytest_configure
        return self.config.pluginmanager.getplugin("terminalreporter")

    def _out(self, text: str) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.write(self.fd, text.encode(errors="replace"))
        else:  # no real descriptor (pytest in-process): the file pytest writes to
            self.file.write(text)
            self.file.flush()

    def _col(self) -> int:
        tw = getattr(self.tr, "_tw", None)
        return int(getattr(tw, "width_of_current_line", 0)) if tw is not None else 0

    def width(self) -> int:
        tw = getattr(self.tr, "_tw", None)
        return int(getattr(tw, "fullwidth", 80)) if tw is not None else 80

    def line(self, text: str) -> None:
        with self.lock:
            current = getattr(getattr(self.tr, "_tw", None), "_current_line", "")
            if current and current is not self._broken:  # pytest's line has text: end it
                self._out("\n")
                self._broken = current  # (pytest makes a new string when it writes)
                if self.tr is not None:
                    self.tr.currentfspath = None  # pytest starts its next file anew
            self._out(text + "\n")

    def draw(self, lines: list[str]) -> None:
        """Below pytest's line, then back to where pytest left the cursor (relative
        moves only, so a scroll at the bottom of the screen does not matter)."""
        with self.lock:
            self.status = lines
            col = self._col()
            if not lines or col >= self.width():
                self._clear()
                return
            out = "\x1b[J" + "".join("\n" + t for t in lines)
            out += f"\x1b[{len(lines)}A\r" + (f"\x1b[{col}C" if col else "")
            self._out(out)
            self.shown = len(lines)

    def _clear(self) -> None:
        if self.shown:
            self._out("\x1b[J")
            self.shown = 0

    def clear(self) -> None:
        with self.lock:
            self._clear()
            self.status = []

    @contextlib.contextmanager
    def pytest_writes(self) -> Generator[None]:
        """Around a hook where pytest writes: the status off, pytest's line noted."""
        with self.lock:
            if self.tty:
                self._clear()
            yield
            tw = getattr(self.tr, "_tw", None)
            if tw is not None:
                tw.flush()
            if self.tty and self.status:
                self.draw(self.status)

    def close(self) -> None:
        self.clear()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


class Display:
    """Updates of one or more sources (``None``: this process; else an xdist worker id)
    shown on a :class:`Screen`."""

    def __init__(self, screen: Screen, every_s: float = 5.0) -> None:
        self.screen = screen
        self.limit = RateLimit(every_s)
        self.latest: dict[str | None, Update] = {}
        self._console: Any = None

    def handle(self, update: Update, source: str | None = None) -> None:
        with self.screen.lock:
            if not self.screen.tty:
                if self.limit.allow(update, source):
                    self.screen.line(plain_line(update, source))
                return
            if update.kind == "end":
                self.latest.pop(source, None)
            else:
                self.latest[source] = update
            self.redraw()

    def redraw(self) -> None:
        with self.screen.lock:
            now = time.time()
            self.screen.draw(
                [self.status_line(u, s, now) for s, u in sorted(self.latest.items(), key=_key)]
            )

    def status_line(self, update: Update, source: str | None, now: float) -> str:
        """One compact, coloured line, cut to the terminal's width."""
        from rich.console import Console
        from rich.text import Text

        width = self.screen.width()
        if self._console is None:
            self._console = Console(
                file=io.StringIO(), force_terminal=True, width=width, color_system="standard"
            )
        t = Text(no_wrap=True, overflow="ellipsis")
        if source:
            t.append(f"{source} ", style="dim")
        t.append(short_test(update.test or "-"), style="bold")
        t.append(f" {progress.elapsed(Update(None, '', since=update.since, at=now))} ")
        t.append(update.phase, style="cyan")
        if update.counts is not None:
            c = update.counts
            t.append(f"  ok {c.ok}", style="green")
            t.append(f" fail {c.fail}", style="red" if c.fail else "dim")
            t.append(f" info {c.info}", style="yellow" if c.info else "dim")
        if update.seed is not None:
            t.append(f"  seed {update.seed}", style="dim")
        t.truncate(max(10, width - 1), overflow="ellipsis")
        with self._console.capture() as cap:
            self._console.print(t, end="", soft_wrap=True)
        return str(cap.get())


def _key(item: tuple[str | None, Update]) -> tuple[int, str]:
    source = item[0] or ""
    return (len(source), source)  # gw2 before gw10


class Ticker:
    """Calls ``fn`` every ``every_s`` seconds on a daemon thread until stopped."""

    def __init__(self, fn: Callable[[], None], every_s: float, name: str) -> None:
        self.fn = fn
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(Exception):  # progress never breaks a run
                self.fn()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        with contextlib.suppress(Exception):
            self.fn()  # what came in last


def to_json(update: Update) -> str:
    return json.dumps(asdict(update))


def from_json(text: str) -> Update:
    d = json.loads(text)
    counts = d.pop("counts")
    return Update(**d, counts=Counts(**counts) if counts is not None else None)


class Tail:
    """New complete JSON lines of every ``*.jsonl`` file in a directory (one per worker,
    named after it), in order per file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.offsets: dict[Path, int] = {}

    def read(self) -> list[tuple[str, Update]]:
        out: list[tuple[str, Update]] = []
        for path in sorted(self.directory.glob("*.jsonl")):
            start = self.offsets.get(path, 0)
            try:
                with path.open("rb") as f:
                    f.seek(start)
                    data = f.read()
            except OSError:
                continue
            end = data.rfind(b"\n") + 1  # a line still being written waits
            self.offsets[path] = start + end
            for raw in data[:end].splitlines():
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    out.append((path.stem, from_json(raw.decode())))
        return out


class Runner:
    """In the process that runs tests: the test's bounds into the hub, the hub's updates
    out (to a :class:`Display`, or to a worker's file), op counts on a tick."""

    def __init__(self, config: pytest.Config, emit: Callable[[Update], None], tick_s: float):
        self.config = config
        self.emit = emit
        self.tick_s = tick_s
        self.outcome = "passed"
        self._unsubscribe = HUB.subscribe(emit)
        config.pluginmanager.register(self, f"{NAME}-runner")
        self._ticker = Ticker(self._tick, tick_s, "harness-progress").start()
        self._last: Counts | None = None

    def _tick(self) -> None:
        update = HUB.snapshot()
        if update.test is not None:
            self.emit(update)

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        from harness.plugin.state import STATE

        self.outcome = "passed"
        HUB.begin(workers.plain_nodeid(nodeid), self.config.stash[STATE].seed)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.outcome = "failed" if report.when == "call" else f"error in {report.when}"
        elif report.skipped and self.outcome == "passed":
            self.outcome = "skipped"

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        HUB.end(self.outcome)

    def close(self) -> None:
        self._unsubscribe()
        self._ticker.stop()


class Terminal:
    """Registered where the terminal is (no xdist, or the xdist controller)."""

    def __init__(self, config: pytest.Config, tty: bool, controller: bool) -> None:
        self.config = config
        self.screen = Screen(config, tty)
        self.display = Display(self.screen)
        self.runner: Runner | None = None
        self.directory: Path | None = None
        self.tail: Tail | None = None
        self._ticker: Ticker | None = None
        tick = TICK_TTY_S if tty else TICK_PLAIN_S
        if controller:
            base = state_dir() / "progress"
            base.mkdir(parents=True, exist_ok=True)
            self.directory = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}-", dir=base))
            self.tail = Tail(self.directory)
            self._ticker = Ticker(self._pump, tick, "harness-progress-tail").start()
        else:
            self.runner = Runner(config, self.display.handle, tick)
            if tty:
                self._ticker = Ticker(self.display.redraw, tick, "harness-progress-draw").start()

    def _pump(self) -> None:
        assert self.tail is not None
        for source, update in self.tail.read():
            self.display.handle(update, source)
        if self.screen.tty and self.display.latest:
            self.display.redraw()

    @pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent with -p no:xdist
    def pytest_configure_node(self, node: Any) -> None:
        if self.directory is not None:
            node.workerinput[INPUT] = str(self.directory)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self) -> Generator[None]:
        with self.screen.pytest_writes():
            yield

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self) -> Generator[None]:
        with self.screen.pytest_writes():
            yield

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.close()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        self.screen.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


class WorkerFile:
    """On an xdist worker: updates appended to ``<dir>/<worker id>.jsonl``; op counts
    only when they moved."""

    def __init__(self, config: pytest.Config, directory: Path) -> None:
        worker = str(getattr(config, "workerinput", {}).get("workerid", "gw"))
        self.path = directory / f"{worker}.jsonl"
        self.lock = threading.Lock()
        self.last: Counts | None = None
        self.runner = Runner(config, self.write, TICK_TTY_S)

    def write(self, update: Update) -> None:
        with self.lock:
            if update.kind == "ops" and update.counts == self.last:
                return
            self.last = update.counts
            with contextlib.suppress(OSError), self.path.open("a") as f:
                f.write(to_json(update) + "\n")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self) -> None:
        self.runner.close()


NAME = "redis-cluster-harness-progress"


def register(config: pytest.Config, choice: str | None) -> None:
    """From ``pytest_configure``: the part of progress this process plays, if any."""
    if workers.is_worker(config):
        directory = config.workerinput.get(INPUT)  # type: ignore[attr-defined]
        if directory and Path(directory).is_dir():
            config.pluginmanager.register(WorkerFile(config, Path(directory)), NAME)
        return
    if not wanted(choice, config.option.verbose):
        return
    controller = bool(
        config.pluginmanager.hasplugin("xdist") and getattr(config.option, "numprocesses", None)
    )
    tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
    config.pluginmanager.register(Terminal(config, tty, controller), NAME)


def unregister(config: pytest.Config) -> None:
    """From ``pytest_unconfigure``: nothing keeps running (also after Ctrl-C)."""
    plugin = config.pluginmanager.get_plugin(NAME)
    if isinstance(plugin, Terminal):
        plugin.close()
    elif isinstance(plugin, WorkerFile):
        plugin.runner.close()
    if plugin is not None:
        config.pluginmanager.unregister(plugin)
