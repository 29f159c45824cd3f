"""``python -m benchmarks``: run every scenario (or ``--only`` some), print one JSON
object per scenario; ``--quick`` uses tiny sizes (the smoke test); ``--markdown FILE``
turns saved results (JSON lines) into the README's Performance table."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import jobs, morning_rush, spawn_overhead, token_refresh
from .common import environment
from .report import markdown

# name -> run(workdir, quick) returning one figures dict, or {scenario: figures} for several
SCENARIOS: dict[str, Callable[[Path, bool], dict[str, Any]]] = {
    "spawn_overhead": spawn_overhead.run,
    "morning_rush": morning_rush.run,  # also prints "memory" (same hub, same servers)
    "token_refresh": token_refresh.run,
    "jobs": jobs.run,
}


def run_one(name: str, quick: bool) -> list[dict[str, Any]]:
    started = time.perf_counter()
    env = environment()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-", ignore_cleanup_errors=True) as tmp:
        try:
            result = SCENARIOS[name](Path(tmp), quick)
        except Exception as e:  # noqa: BLE001 - reported as the scenario's figures
            traceback.print_exc()
            result = {"error": f"{type(e).__name__}: {e}"}
    seconds = round(time.perf_counter() - started, 1)
    parts = result.pop("scenarios", None) or {name: result}
    return [
        {"scenario": scenario, "quick": quick, "seconds": seconds, **env, **figures}
        for scenario, figures in parts.items()
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), default=None)
    parser.add_argument("--out", type=Path, help="also append the JSON lines to this file")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="print the README table")
    args = parser.parse_args(argv)
    if args.markdown:
        records = [json.loads(x) for x in args.markdown.read_text().splitlines() if x.strip()]
        print(markdown(records))
        return 0
    failed = False
    for name in args.only or list(SCENARIOS):
        for record in run_one(name, args.quick):
            failed |= "error" in record
            line = json.dumps(record)
            print(line, flush=True)
            if args.out:
                with args.out.open("a") as f:
                    f.write(line + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
