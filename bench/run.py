"""`make bench`: every benchmark in turn (wallet store throughput, then the gateway path)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    for script in (
        "reserve_bench.py",
        "check_bench.py",
        "periods_bench.py",
        "burst_bench.py",
        "gateway_bench.py",
        "floor_bench.py",
        "check_transport_bench.py",
        "ledger_bench.py",
    ):
        print(f"\n### bench/{script}", flush=True)
        code = subprocess.call([sys.executable, str(HERE / script), *sys.argv[1:2]])
        if code != 0:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
