"""One line per summary.json under a directory: implementation, backend, totals, failovers
(and a line per upgrade rehearsal and per regression scenario).

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
        for u in s.get("upgrades", []):  # rolling-upgrade rehearsals: one line each
            plan, back = u["plan"], u.get("rollback")
            lost = (u.get("writes") or {}).get("lost_outside_windows")
            line = f"  {plan['kind']} {plan['source']} -> {plan['target']}: {u['verdict']}"
            line += f" (lost outside windows {lost})"
            if back:
                line += f"; rollback {back['verdict']}" + "".join(
                    f", {r['name']}" for r in back["risks"][:2]
                )
            print(line)
        for r in s.get("regressions", []):  # regression scenarios: k of n, the verdict
            expect = (r.get("expectation") or {}).get("expect")
            verdict = f"expected {expect}" if expect else "no expectation in the profile"
            verdict = f"SURPRISE: {r['surprise']}" if r["surprise"] else verdict
            print(f"  {r['scenario']} [{r['bug']['reference']}]: {r['rate']}; {verdict}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "reports")
