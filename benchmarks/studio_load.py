"""Load test of the studio API: bursts of concurrent ``POST /api/synthesize`` requests.

Starts ``spadekit studio`` as a separate process (so the server's memory and CPU are its own), sends
``--rounds`` bursts of ``--requests`` requests, ``--concurrency`` at a time, with the model's example
label maps and varied seeds, and reports: answers by status code, latency percentiles, throughput,
and the server's resident memory after warm-up and after every round (steady memory: no growth
from round to round). Writes JSON.

    python benchmarks/studio_load.py --model toy --requests 200 --concurrency 200 --out studio_load.json
    python benchmarks/studio_load.py --max-batch 1 --out unbatched.json     # one synthesis per call

Exit status 1 when any request was not answered with 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from spadekit.io import atomic_write_text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def rss_mib(pid: int) -> dict[str, float]:
    """Current (VmRSS) and peak (VmHWM) resident memory of a process, in MiB (Linux)."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return {"rss": round(values["VmRSS"], 1), "peak": round(values["VmHWM"], 1)}


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]

    return {
        "p50_ms": round(1000 * at(50), 1),
        "p90_ms": round(1000 * at(90), 1),
        "p99_ms": round(1000 * at(99), 1),
        "max_ms": round(1000 * ordered[-1], 1),
        "mean_ms": round(1000 * statistics.mean(ordered), 1),
    }


async def burst(url: str, labels: list[bytes], requests: int, concurrency: int, first_seed: int) -> tuple[list[int], list[float], float]:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(client: httpx.AsyncClient, i: int) -> tuple[int, float]:
        async with gate:
            start = time.perf_counter()
            try:
                r = await client.post(
                    "/api/synthesize",
                    files={"labels": ("labels.png", labels[i % len(labels)], "image/png")},
                    data={"seed": str(first_seed + i)},
                )
                status = r.status_code
            except httpx.HTTPError:
                status = 0  # no answer at all
            return status, time.perf_counter() - start

    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(one(client, i) for i in range(requests)))
        wall = time.perf_counter() - start
    return [s for s, _ in results], [t for _, t in results], wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="release model directory or bundled model name (default: toy)")
    parser.add_argument("--requests", type=int, default=200, help="requests per round (default 200)")
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight at once (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="bursts to send; memory is read after each (default 3)")
    parser.add_argument("--warmup", type=int, default=10, help="sequential requests before measuring (default 10)")
    parser.add_argument("--device", default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--max-batch", type=int, default=8, help="the server's dynamic batch limit (1: one synthesis per call)")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="the server's batch wait (default 5)")
    parser.add_argument("--out", default="studio_load.json", help="JSON file to write (default studio_load.json)")
    args = parser.parse_args(argv)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "spadekit.cli", "studio", "--model", args.model, "--port", str(port), "--device", args.device]
    command += ["--max-queue", str(max(256, args.concurrency)), "--max-batch", str(args.max_batch), "--batch-wait-ms", str(args.batch_wait_ms)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            if server.poll() is not None:
                print(f"error: the studio server exited: {server.stderr.read().strip()}", file=sys.stderr)
                return 2
            try:
                info = httpx.get(f"{url}/api/model", timeout=5).json()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    print("error: the studio server did not start within 300 s", file=sys.stderr)
                    return 2
                time.sleep(0.5)
        labels = [httpx.get(f"{url}{e['url']}", timeout=30).content for e in info["examples"]]
        if not labels:
            print("error: the model has no example label maps to send", file=sys.stderr)
            return 2
        for i in range(args.warmup):
            httpx.post(f"{url}/api/synthesize", files={"labels": ("l.png", labels[i % len(labels)], "image/png")}, timeout=120)
        memory = {"after_warmup": rss_mib(server.pid), "after_round": []}
        rounds = []
        all_ok = True
        for round_index in range(args.rounds):
            statuses, latencies, wall = asyncio.run(burst(url, labels, args.requests, args.concurrency, round_index * args.requests))
            counts: dict[str, int] = {}
            for s in statuses:
                counts[str(s)] = counts.get(str(s), 0) + 1
            all_ok &= counts.get("200", 0) == args.requests
            memory["after_round"].append(rss_mib(server.pid))
            rounds.append(
                {
                    "answered_by_status": counts,
                    "wall_s": round(wall, 2),
                    "throughput_per_s": round(args.requests / wall, 2),
                    "latency": percentiles(latencies),
                }
            )
            r = rounds[-1]
            print(
                f"round {round_index + 1}: {counts} in {wall:.1f}s ({r['throughput_per_s']}/s); latency p50 "
                f"{r['latency']['p50_ms']} ms, p90 {r['latency']['p90_ms']} ms, p99 {r['latency']['p99_ms']} ms; "
                f"server RSS {memory['after_round'][-1]['rss']} MiB"
            )
        status = httpx.get(f"{url}/api/status", timeout=30).json()
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    rss_values = [m["rss"] for m in memory["after_round"]]
    report = {
        "benchmark": "studio_load",
        "model": args.model,
        "model_size": info["size"],
        "device": args.device,
        "max_batch": args.max_batch,
        "batch_wait_ms": args.batch_wait_ms,
        "load_average_1min": os.getloadavg()[0],
        "requests_per_round": args.requests,
        "concurrency": args.concurrency,
        "rounds": rounds,
        "memory_mib": memory,
        "rss_growth_first_to_last_round_mib": round(rss_values[-1] - rss_values[0], 1),
        "rss_growth_warmup_to_last_round_mib": round(rss_values[-1] - memory["after_warmup"]["rss"], 1),
        "server_queue": status,
        "all_answered_200": all_ok,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
    }
    atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    print(
        f"server RSS after warm-up {memory['after_warmup']['rss']} MiB, after the rounds {rss_values} MiB "
        f"(peak {memory['after_round'][-1]['peak']} MiB); mean synthesis {status.get('mean_job_ms')} ms; wrote {args.out}"
    )
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
