"""`python -m bench` (scripts/bench.sh): throughput, latency, overhead against the transport floor,
slot utilisation and connection scale of the secured system, all on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.first_chunk import first_chunk_load
from bench.floor import measure_floor
from bench.load import LoadClients, Results, log_in, percentile
from bench.procstats import ProcessSampler
from devstack.local_broker import free_port
from devstack.local_run import LocalStack, database_file, run_local_stack
from devstack.users import create_users
from master.accounts import Passwords


def lat(r: Results) -> str:
    v = r.latencies_ms
    return f"p50 {percentile(v, 50):6.2f} ms  p95 {percentile(v, 95):6.2f} ms  p99 {percentile(v, 99):6.2f} ms"


def usage_line(sampler: ProcessSampler, seconds: float) -> list[str]:
    out = []
    for name, u in sampler.usage.items():
        out.append(f"    {name:<10} CPU {u.cpu_s / seconds * 100:5.1f} % of one core   peak RSS {u.peak_rss_mb:6.1f} MB")
    return out


def stack_pids(stack: LocalStack) -> dict[str, int]:
    """Every process of the stack, the broker included, and this driver (it shares the cores)."""
    pids = {name: p.pid for name, p in stack.processes.items()}
    pids["mosquitto"] = stack.broker_pid
    pids["driver"] = os.getpid()
    return pids


# The per-user limits are checked on every question but set off, so that the figures are the system's
# capacity, not the limits' (defaults: 20 a minute, 4 open per user).
UNLIMITED = {"RATE_PER_MINUTE": "0", "MAX_OPEN_TASKS_PER_USER": "0"}


def make_users(run_dir: Path, count: int) -> dict[str, str]:
    """`count` users in the store the master of `run_dir` will open, one per load client, their passwords hashed
    at the deployment's cost (a real user's login, and its memory, not the tests' cheap hash)."""
    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    return create_users(database_file(run_dir), [f"bench{i}" for i in range(count)], passwords=Passwords())


async def system_figures(stack: LocalStack, args: argparse.Namespace, report: dict[str, Any],
                         cookies: list[str]) -> None:
    async with LoadClients(stack.url, stack.ca, args.clients, cookies) as load:
        await load.closed_loop(1, 1.0, warmup_s=0)  # warm every path once
        with ProcessSampler(stack_pids(stack)) as sampler:
            t0 = time.perf_counter()
            sat = await load.closed_loop(args.depth, args.duration)
            busy_s = time.perf_counter() - t0
        report["saturation"] = {"tasks_per_s": sat.rate, "errors": sat.errors, "p50_ms": percentile(sat.latencies_ms, 50),
                                "p99_ms": percentile(sat.latencies_ms, 99),
                                "cpu_pct": {n: u.cpu_s / busy_s * 100 for n, u in sampler.usage.items()},
                                "peak_rss_mb": {n: u.peak_rss_mb for n, u in sampler.usage.items()}}
        print(f"  saturation ({args.clients} clients x {args.depth} in flight, {args.duration:.0f} s): "
              f"{sat.rate:8.1f} tasks/s   ({sat.errors} errors)   {lat(sat)}")
        print("\n".join(usage_line(sampler, busy_s)))
        report["load"] = {}
        for fraction in (0.25, 0.5, 0.9):
            rate = max(1.0, sat.rate * fraction)
            r = await load.open_loop(rate, args.duration)
            report["load"][f"{int(fraction * 100)}%"] = {
                "offered_per_s": rate, "done_per_s": r.rate, "errors": r.errors,
                **{f"p{p}_ms": percentile(r.latencies_ms, p) for p in (50, 95, 99)},
            }
            print(f"  {int(fraction * 100):>3} % load ({rate:7.1f}/s offered, {r.rate:7.1f}/s done): {lat(r)}")


async def floor_figures(stack: LocalStack, pki: Path, args: argparse.Namespace, report: dict[str, Any]) -> None:
    in_flight = args.clients * args.depth
    sat, _ = await measure_floor(stack.mqtt_port, pki, pki / "credentials", in_flight, args.duration)
    one, _ = await measure_floor(stack.mqtt_port, pki, pki / "credentials", 1, min(args.duration, 3.0))
    report["floor"] = {"tasks_per_s": sat.rate, "p50_ms_at_1_in_flight": percentile(one.latencies_ms, 50),
                       "p99_ms_at_1_in_flight": percentile(one.latencies_ms, 99)}
    print(f"  floor, {in_flight} in flight: {sat.rate:8.1f} round trips/s   {lat(sat)}")
    print(f"  floor, 1 in flight:      {one.rate:8.1f} round trips/s   {lat(one)}")
    system = report["saturation"]["tasks_per_s"]
    report["ratio_system_to_floor_throughput"] = system / sat.rate if sat.rate else float("nan")
    print(f"  system / floor throughput: {report['ratio_system_to_floor_throughput']:.2f}")


async def slot_figures(stack: LocalStack, args: argparse.Namespace, report: dict[str, Any],
                       cookies: list[str]) -> None:
    slots = args.workers * args.capacity
    tasks = 3 * slots
    async with LoadClients(stack.url, stack.ca, min(args.clients, tasks), cookies) as load:
        start = time.perf_counter()
        outcomes = await asyncio.gather(*(load.ask(load.clients[i % len(load.clients)]) for i in range(tasks)))
        elapsed = time.perf_counter() - start
    done = sum(ok for ok, _ in outcomes)
    utilisation = (done / elapsed) / (slots / args.slot_latency)
    report["slots"] = {"slots": slots, "tasks": tasks, "seconds": elapsed, "utilisation": utilisation}
    print(f"  {tasks} tasks on {args.workers} x {args.capacity} slots at {args.slot_latency:.1f} s each: "
          f"{elapsed:.2f} s, {done / elapsed:.2f} tasks/s, utilisation {utilisation * 100:.1f} %")


async def connection_figures(stack: LocalStack, args: argparse.Namespace, report: dict[str, Any],
                             cookies: list[str]) -> None:
    master = psutil.Process(stack.processes["master"].pid)
    before = master.memory_info().rss / 2**20
    start = time.perf_counter()
    async with LoadClients(stack.url, stack.ca, args.connections, cookies) as load:  # users' cookies shared: tabs
        connect_s = time.perf_counter() - start
        await asyncio.sleep(1.0)
        held = sum(c.connected for c in load.clients)
        ok, ms = await load.ask(load.clients[-1])  # the server still answers with all of them open
        after = master.memory_info().rss / 2**20
    report["connections"] = {"held": held, "connect_s": connect_s, "master_rss_mb_before": before,
                             "master_rss_mb_with_connections": after, "answer_ms": ms if ok else None}
    print(f"  {held} Socket.IO connections held (opened in {connect_s:.1f} s): master RSS {before:.1f} MB -> "
          f"{after:.1f} MB; a question with all open answered in {ms:.1f} ms")


def first_chunk_run(args: argparse.Namespace) -> dict[str, Any]:
    """--first-chunk: time to first chunk through Socket.IO, echo writing its first word at --first-token s and
    its last at --answer-time s, at --load of the slots; the transport floor (1 in flight) of the same run."""
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")},
                              "config": vars(args).copy()}
    slots = args.workers * args.capacity
    rate = args.load * slots / args.answer_time
    print(f"ai-system time to first chunk on {os.cpu_count()} CPUs: echo first word at {args.first_token:.2f} s, "
          f"whole answer {args.answer_time:.2f} s; {args.workers} workers x {args.capacity} slots; "
          f"{args.load * 100:.0f} % load = {rate:.1f} questions/s")
    with tempfile.TemporaryDirectory(prefix="aisys-bench-") as tmp:
        pki = Path(tmp) / "pki"
        accounts = make_users(Path(tmp) / "run", args.clients)
        env = {**UNLIMITED, "ECHO_FIRST_TOKEN_S": str(args.first_token)}
        with run_local_stack(web_port=free_port(), run_dir=Path(tmp) / "run", workers=args.workers,
                             capacity=args.capacity, pki_dir=pki, log_level=args.log_level,
                             master_python=args.master_python, worker_python=args.worker_python,
                             echo_latency_s=args.answer_time, extra_env=env) as stack:
            cookies = asyncio.run(log_in(stack.url, stack.ca, accounts))
            with ProcessSampler(stack_pids(stack)) as sampler:
                r = asyncio.run(first_chunk_load(stack.url, stack.ca, cookies, rate, args.duration, args.clients))
            figures = r.summary(args.first_token)
            report["first_chunk"] = {"offered_per_s": rate, **figures,
                                     "cpu_pct": {n: u.cpu_s / r.elapsed_s * 100 for n, u in sampler.usage.items()}}
            print(f"  {figures['answers']} answers ({figures['errors']} errors, {figures['chunks']} chunks), "
                  f"{figures['done_per_s']:.1f}/s done")
            print(f"  time to first chunk: p50 {figures['first_chunk_p50_ms']:.1f} ms  p95 "
                  f"{figures['first_chunk_p95_ms']:.1f} ms  p99 {figures['first_chunk_p99_ms']:.1f} ms")
            print(f"  over the model's first token: p50 {figures['over_first_token_p50_ms']:.1f} ms  p95 "
                  f"{figures['over_first_token_p95_ms']:.1f} ms  p99 {figures['over_first_token_p99_ms']:.1f} ms")
            print("\n".join(usage_line(sampler, r.elapsed_s)))
            one, _ = asyncio.run(measure_floor(stack.mqtt_port, pki, pki / "credentials", 1, min(args.duration, 3.0)))
            report["floor"] = {"p50_ms_at_1_in_flight": percentile(one.latencies_ms, 50),
                               "p99_ms_at_1_in_flight": percentile(one.latencies_ms, 99)}
            print(f"  floor, 1 in flight:      {one.rate:8.1f} round trips/s   {lat(one)}")
    return report


def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                          "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")},
                              "config": vars(args).copy()}
    print(f"ai-system benchmark on {os.cpu_count()} CPUs, Python {platform.python_version()}; TLS and auth on every hop")
    with tempfile.TemporaryDirectory(prefix="aisys-bench-") as tmp:
        pki = Path(tmp) / "pki"
        common = dict(workers=args.workers, capacity=args.capacity, pki_dir=pki, log_level=args.log_level,
                      master_python=args.master_python, worker_python=args.worker_python, extra_env=UNLIMITED)
        print(f"master runs with {args.master_python or sys.executable}, workers with {args.worker_python or sys.executable}")
        print(f"\n[1] system: echo at 0 ms, {args.workers} workers x {args.capacity} slots")
        accounts = make_users(Path(tmp) / "run1", args.clients)
        with run_local_stack(web_port=free_port(), run_dir=Path(tmp) / "run1", **common) as stack:  # type: ignore[arg-type]
            cookies = asyncio.run(log_in(stack.url, stack.ca, accounts))
            print(f"  {len(cookies)} users logged in, one per client")
            asyncio.run(system_figures(stack, args, report, cookies))
            print("\n[2] transport floor: MQTT/TLS publish -> subscriber -> gRPC mTLS reply")
            asyncio.run(floor_figures(stack, pki, args, report))
            print("\n[4] connection scale")
            asyncio.run(connection_figures(stack, args, report, cookies))
        print(f"\n[3] slot utilisation: echo at {args.slot_latency:.1f} s")
        accounts = make_users(Path(tmp) / "run2", args.clients)
        with run_local_stack(web_port=free_port(), run_dir=Path(tmp) / "run2", echo_latency_s=args.slot_latency,
                             **common) as stack:  # type: ignore[arg-type]
            cookies = asyncio.run(log_in(stack.url, stack.ca, accounts))
            asyncio.run(slot_figures(stack, args, report, cookies))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.sh", description=__doc__)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--capacity", type=int, default=32, help="slots per worker")
    parser.add_argument("--clients", type=int, default=50, help="concurrent Socket.IO clients")
    parser.add_argument("--depth", type=int, default=2, help="questions in flight per client at saturation")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--slot-latency", type=float, default=1.0, help="echo latency for the slot test")
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--master-python", default=None, help="interpreter for the master (bench.sh: .venv-master)")
    parser.add_argument("--worker-python", default=None, help="interpreter for the workers (bench.sh: .venv-worker)")
    parser.add_argument("--quick", action="store_true", help="a few seconds in all (the smoke test)")
    parser.add_argument("--first-chunk", action="store_true",
                        help="only the time to first chunk through Socket.IO (streaming answers)")
    parser.add_argument("--first-token", type=float, default=0.5, help="--first-chunk: echo's first word after S s")
    parser.add_argument("--answer-time", type=float, default=2.0, help="--first-chunk: echo's whole answer in S s")
    parser.add_argument("--load", type=float, default=0.5, help="--first-chunk: fraction of the slots kept busy")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.clients, args.depth, args.duration, args.connections = 4, 1, 1.0, 20
        args.capacity, args.slot_latency = 2, 0.2
        args.first_token, args.answer_time = 0.1, 0.3
    report = first_chunk_run(args) if args.first_chunk else run(args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
