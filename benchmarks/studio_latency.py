"""Stroke latency of the studio: how long one painted stroke takes to come back as a picture.

A stroke in the studio is one ``POST /api/synthesize`` with the whole label map as a PNG; the page
shows the returned PNG. This script serves a model with the studio's app (uvicorn on a background
thread of this process, as ``spadekit studio`` does), paints a sequence of strokes on a toy-scene
label map (a disc of another class moved along a path, one request per stroke, sequentially, as a
painting user sends them) and reports the round-trip latency percentiles: PNG encoding on the
client, HTTP, decoding and validation, the generator, PNG encoding of the answer.

    python benchmarks/studio_latency.py --model asapnet-toy --size 256 --strokes 40 --out studio_latency.json

``--model`` is a release model, a bundled model name or a preset (random weights: the speed does not
depend on them); ``--size`` runs the model at that side (ASAPNet keeps its tile size). Use
``--threads`` to pin torch's threads.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import time
from pathlib import Path
from spadekit.io import atomic_write_text


def load(name: str, size: int | None):
    import torch

    from spadekit.config import list_presets
    from spadekit.inference import Pipeline, model_at_size
    from spadekit.release import bundled_models, load_model

    if name in list_presets() and name not in bundled_models() and not Path(name).exists():
        from spadekit.bench import random_model

        model = random_model(name)
        source = f"preset {name} (random weights)"
    else:
        model = load_model(name)
        source = name
    if size:
        model = model_at_size(model, (size, size))
    torch.manual_seed(0)
    return Pipeline(model), source


def strokes(size: int, count: int, seed: int = 0):
    """Label maps of successive strokes: a toy scene with a 'tree' disc (radius size/16) moving along a line."""
    import numpy as np

    from spadekit.data.toy import render_scene

    base = render_scene(seed, (size, size)).label.copy()
    yy, xx = np.mgrid[0:size, 0:size]
    radius = max(2, size // 16)
    painted = base.copy()
    for k in range(count):
        cx = int(size * (0.15 + 0.7 * k / max(1, count - 1)))
        cy = int(size * 0.6)
        painted[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 9
        yield painted.copy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="toy", help="release model, bundled model name, or a preset (random weights)")
    parser.add_argument("--size", type=int, help="run the model at SIDExSIDE (default: its own size)")
    parser.add_argument("--strokes", type=int, default=40, help="strokes painted (default 40; the first 5 are warm-up)")
    parser.add_argument("--threads", type=int, help="torch threads")
    parser.add_argument("--out", help="write the JSON report here")
    args = parser.parse_args()

    import httpx
    import numpy as np
    import torch
    from PIL import Image

    from spadekit.studio import create_app
    from spadekit.studio.server import background_server

    if args.threads:
        torch.set_num_threads(args.threads)
    pipeline, source = load(args.model, args.size)
    width, height = pipeline.size
    app = create_app(pipeline, model_name=source)
    times, generator_times = [], []
    load_before = os.getloadavg()
    with background_server(app) as url, httpx.Client(base_url=url, timeout=120) as client:
        for k, label in enumerate(strokes(width, args.strokes)):
            buffer = io.BytesIO()
            Image.fromarray(label.astype(np.uint8)).save(buffer, format="PNG")
            start = time.perf_counter()
            answer = client.post("/api/synthesize", files={"labels": ("l.png", buffer.getvalue(), "image/png")}, data={"seed": "0"})
            Image.open(io.BytesIO(answer.content)).load()
            elapsed = time.perf_counter() - start
            if answer.status_code != 200:
                raise SystemExit(f"stroke {k}: HTTP {answer.status_code}: {answer.text}")
            if k >= 5:
                times.append(elapsed)
        index, edges = pipeline.prepare(strokes(width, 1).__next__())
        for _ in range(10):
            start = time.perf_counter()
            pipeline.generate(index, edges, None)
            generator_times.append(time.perf_counter() - start)

    def ms(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return round(1000 * ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 1)

    report = {
        "model": source,
        "method": pipeline.config.method,
        "size": [width, height],
        "fast_path": pipeline.fast,
        "strokes_timed": len(times),
        "stroke_ms": {"p50": ms(times, 0.5), "p90": ms(times, 0.9), "max": ms(times, 1.0),
                      "mean": round(1000 * statistics.mean(times), 1)},
        "generator_ms_p50": ms(generator_times, 0.5),
        "threads": torch.get_num_threads(),
        "cpu": f"{platform.machine()}, {os.cpu_count()} cores",
        "load_average": [round(v, 2) for v in load_before],
    }
    print(json.dumps(report, indent=2))
    if args.out:
        atomic_write_text(Path(args.out), json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
