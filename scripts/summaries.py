"""One line per summary.json under a directory: implementation, backend, totals, failovers.

Used by .ci/run and scripts/matrix.sh to print what every run of a matrix gave.
"""

from __future__ import annotations

import json
import pathlib
import sys


def main(root: str) -> None:
    for path in sorted(pathlib.Path(root).glob("**/summary.json")):
        s = json.loads(path.read_text())
        failovers = [
            round(t["metrics"]["failover_ms"]) for t in s["tests"] if "failover_ms" in t["metrics"]
        ]
        impl = s["implementation"]["name"]
        print(f"{path}: {impl} {s['backend']} {s['totals']} failover_ms={failovers}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "reports")
