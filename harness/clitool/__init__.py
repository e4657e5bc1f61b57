"""The implementation's own cluster tool (``redis-cli --cluster``, ``valkey-cli``):
found beside the server (:mod:`~harness.clitool.locate`), run where the nodes are
(:mod:`~harness.clitool.runner`), its commands on a cluster's timeline
(:mod:`~harness.clitool.tool`), and its ``check`` read as a verdict
(:mod:`~harness.clitool.check`), a second opinion next to the harness's checkers."""

from __future__ import annotations

from harness.clitool.check import CheckedNode, CheckVerdict, parse_check
from harness.clitool.locate import CliProgram, host_cli
from harness.clitool.runner import CliError, CliRun
from harness.clitool.tool import ClusterCli, cli_for, cli_unavailable, find_program, second_opinion

__all__ = [
    "CheckVerdict",
    "CheckedNode",
    "CliError",
    "CliProgram",
    "CliRun",
    "ClusterCli",
    "cli_for",
    "cli_unavailable",
    "find_program",
    "host_cli",
    "parse_check",
    "second_opinion",
]
