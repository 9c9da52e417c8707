"""Diversity benchmark: do a model's samples of one layout vary as much as real toy photos of it?

Real reference: toy scene layouts photographed in several styles (``render_scene(seed, size,
style_seed=k)``: the same label and instance maps, another look each). Model: the same label and
instance maps drawn with as many latent seeds (``Pipeline(..., seed=s, num_samples=K)``, no style
photo: z ~ N(0, I)). Both are scored with the toy protocol's feature diversity (the mean pairwise
:meth:`~spadekit.evaluation.toy_segmenter.ToySegmenter.feature_distance` of the K images of a
layout, averaged over layouts; what ``spadekit evaluate --metrics feature-diversity`` reports).

    python benchmarks/toy_diversity.py                     # the bundled toy model, 20 layouts x 4
    python benchmarks/toy_diversity.py --model runs/toy/model --out diversity.json

The issue's goal: model / real within a factor of 2 (0.5 .. 2).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


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

    from spadekit.data.toy import render_scene, scene_seed
    from spadekit.evaluation.diversity import Diversity
    from spadekit.evaluation.toy_segmenter import load_toy_segmenter, to_unit_range
    from spadekit.inference import Pipeline

    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    pipe = Pipeline.from_pretrained(args.model)
    segmenter = load_toy_segmenter()
    width, _ = pipe.size
    real, model = Diversity(segmenter.feature_distance), Diversity(segmenter.feature_distance)
    for i in range(args.layouts):
        layout_seed = scene_seed(args.seed, i, "val")
        scenes = [render_scene(layout_seed, width, style_seed=k) for k in range(args.samples)]
        photos = torch.stack([torch.from_numpy(s.image).permute(2, 0, 1) for s in scenes])
        real.update(to_unit_range(photos))
        model.update(pipe(scenes[0].label, scenes[0].instance, seed=1000 * i, num_samples=args.samples, output="tensor"))
    real_value, model_value = real.compute(), model.compute()
    ratio = model_value / real_value
    met = 0.5 <= ratio <= 2.0
    print(f"feature diversity over {args.layouts} layouts x {args.samples} samples: real toy photos (style seeds) "
          f"{real_value:.4f}, {args.model} (latent seeds) {model_value:.4f}, ratio {ratio:.2f} "
          f"(goal 0.5..2: {'met' if met else 'missed'})")
    report = {
        "benchmark": "toy_diversity",
        "model": args.model,
        "layouts": args.layouts,
        "samples": args.samples,
        "seed": args.seed,
        "metric": "feature-diversity (toy segmenter features, not LPIPS)",
        "real": real_value,
        "model_value": model_value,
        "ratio": ratio,
        "goal": {"range": [0.5, 2.0], "met": met},
        "seconds": round(time.perf_counter() - begin, 1),
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
