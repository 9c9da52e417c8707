"""Diversity benchmark: do a model's samples of one layout vary as much as real toy photos of it?

Real reference: toy layouts photographed in several styles (``render_scene(seed, size,
style_seed=k)``: the same label and instance maps, another look each). Model: the same maps drawn
with as many latent seeds (``Pipeline(..., seed=s, num_samples=K)``, no style photo). Both are
scored with the toy protocol's feature diversity (see :mod:`spadekit.evaluation.toy_diversity`).

    python benchmarks/toy_diversity.py                     # the bundled toy model, 20 layouts x 4
    python benchmarks/toy_diversity.py --model runs/toy/model --out diversity.json

The issue's goal: model / real within a factor of 2 (0.5 .. 2).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from spadekit.io import atomic_write_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="release model directory or bundled name (default: toy)")
    parser.add_argument("--layouts", type=int, default=20, help="layouts (default 20)")
    parser.add_argument("--samples", type=int, default=4, help="styles / latent seeds per layout (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="toy scene seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    import torch

    from spadekit.evaluation.toy_diversity import toy_diversity
    from spadekit.evaluation.toy_segmenter import load_toy_segmenter
    from spadekit.inference import Pipeline

    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    result = toy_diversity(Pipeline.from_pretrained(args.model), load_toy_segmenter(), args.layouts, args.samples, args.seed)
    met = 0.5 <= result["ratio"] <= 2.0
    print(f"feature diversity over {args.layouts} layouts x {args.samples} samples: real toy photos (style seeds) "
          f"{result['real']:.4f}, {args.model} (latent seeds) {result['model']:.4f}, ratio {result['ratio']:.2f} "
          f"(goal 0.5..2: {'met' if met else 'missed'})")
    report = {
        "benchmark": "toy_diversity",
        "model": args.model,
        "seed": args.seed,
        "metric": "feature-diversity (toy segmenter features, not LPIPS)",
        **result,
        "goal": {"range": [0.5, 2.0], "met": met},
        "seconds": round(time.perf_counter() - begin, 1),
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
