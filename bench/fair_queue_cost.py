"""`python -m bench.fair_queue_cost`: microseconds per push + take of master/fair_queue.py, strict vs aging.

10,000 tasks stay queued (100 owners, 3 levels); each step queues one more and takes one. Rounds
alternate strict priority and aging so that a noisy machine affects both alike.
"""

from __future__ import annotations

import argparse
import time

from master.fair_queue import FairQueue


def cost_us(aging_s: float, queued: int = 10_000, steps: int = 100_000, owners: int = 100) -> float:
    """Mean microseconds of one push followed by one take."""
    q = FairQueue(aging_s=aging_s)
    for n in range(queued):
        q.push(f"t{n}", f"o{n % owners}", n % 3)
    start = time.perf_counter()
    for i in range(steps):
        n = queued + i
        q.push(f"t{n}", f"o{n % owners}", n % 3)
        q.take(lambda _t: True)
    return (time.perf_counter() - start) / steps * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    for r in range(args.rounds):
        for aging_s in (0.0, 30.0):
            print(f"round {r} aging_s={aging_s:g}: {cost_us(aging_s):.1f} us per push + take")


if __name__ == "__main__":
    main()
