"""Inference speed: the fast generator against the plain one, full size, side by side.

Runs ``spadekit bench`` logic on a preset (COCO-Stuff by default: 184 input channels, 256×256) with
random weights, writes the report as JSON and checks the target: the fast path reaches at least
``--min-speedup`` × the plain path's images/s with outputs equal within ``--max-diff``.

    python benchmarks/inference.py --preset coco --iters 5 --out inference_coco.json

The machine may be shared: the two paths are interleaved iteration by iteration so that a change
of load hits both, and the report records the load average before and after. Exit status 1 when
the target is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

from spadekit.bench import format_report, random_model, run_bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="coco", help="preset built with random weights (default coco)")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--min-speedup", type=float, default=1.5)
    parser.add_argument("--max-diff", type=float, default=1e-4)
    parser.add_argument("--out", default="inference_bench.json", help="JSON report to write")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model = random_model(args.preset, calibration_batch=max(2, args.batch))
    report = run_bench(model, batch=args.batch, iters=args.iters, device=args.device)
    report["model"] = f"preset {args.preset} (random weights)"
    report["load_average_before"] = list(load_before)
    report["load_average_after"] = list(os.getloadavg())
    report["cpu_count"] = os.cpu_count()
    report["target"] = {"min_speedup": args.min_speedup, "max_abs_diff": args.max_diff}
    report["passed"] = report["speedup"] >= args.min_speedup and report["max_abs_diff"] <= args.max_diff
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(format_report(report))
    print(f"load average before {load_before[0]:.2f}, after {report['load_average_after'][0]:.2f}; "
          f"target {'met' if report['passed'] else 'MISSED'}; wrote {args.out}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
