"""Burst utilisation without overspend (issue 11 item 6), through the real Envoy and Redis.

    .venv/bin/python bench/burst_bench.py [--requests 400] [--concurrency 50] [--wait 2]

A $1.00 team budget, 400 requests at concurrency 50, each with a known true cost (gpt-4o, 200
input tokens, 100-500 output tokens as the fake provider reports them, max_tokens 1000, so each
reservation is ~3x its cost). Prints the share of the budget used and the micros overspent, with
`enforcement.wait_for_reserved_seconds` as configured (default 2 s) and with it off (0), so the
figure the wait buys is visible.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from testing.burst import run_burst
from testing.redis_server import RedisServer
from testing.stack import Stack, stack_config
from tests.fake_provider import FakeProvider


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--wait", type=float, default=2.0)
    args = ap.parse_args()
    print("== burst: $1.00 team budget, known true costs ==")
    failed = False
    for wait in (args.wait, 0.0):
        with RedisServer() as rs, FakeProvider() as provider:
            cfg = stack_config(
                rs.url, provider.url, enforcement={"wait_for_reserved_seconds": wait}
            )
            with Stack(cfg) as stack:
                result = run_burst(stack, requests=args.requests, concurrency=args.concurrency)
        print(f"wait_for_reserved_seconds={wait:g}: {result.line()}")
        print(f"  utilisation {100 * result.utilisation:.1f}%  overspent {result.overspent} micros")
        failed |= result.overspent != 0 or result.spent != result.admitted_cost
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
