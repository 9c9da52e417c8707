"""Style-fidelity benchmark: does the bundled (or any VAE) model follow its style photo?

For 50 (layout, style photo) pairs of independent toy scenes (toy ``val`` scene i drawn in the
style of toy ``test`` scene i), it correlates, class by class, the result's mean colour inside the
class with the style photo's mean colour in that class (Pearson r per RGB channel, averaged; see
:mod:`spadekit.evaluation.style_fidelity`). The control column draws the same layouts with a random
latent instead of the style photo: its r is near 0 for any model.

    python benchmarks/style_fidelity.py                       # the bundled toy model, 50 pairs
    python benchmarks/style_fidelity.py --model runs/toy/model --out style.json

The last column, ``r real``, is the ceiling: real toy photos of each layout drawn in the style
photo's look (one style seed for both scenes). The issue's goal: r >= 0.8 for sky and grass.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from spadekit.io import atomic_write_text

GOAL_CLASSES = ("sky", "grass")
GOAL_R = 0.8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="release model directory or bundled name (default: toy)")
    parser.add_argument("--pairs", type=int, default=50, help="(layout, style) pairs (default 50)")
    parser.add_argument("--seed", type=int, default=0, help="toy scene seed and first latent seed (default 0)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    import torch

    from spadekit.evaluation.style_fidelity import format_table, real_style_fidelity, style_fidelity, toy_pairs
    from spadekit.inference import Pipeline

    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    pipe = Pipeline.from_pretrained(args.model)
    width, height = pipe.size
    pairs = toy_pairs(args.pairs, width, args.seed)
    names = pipe.class_names
    with_style = style_fidelity(pipe, pairs, names, use_style=True, seed=args.seed)
    control = style_fidelity(pipe, pairs, names, use_style=False, seed=args.seed)
    real = real_style_fidelity(args.pairs, names, width, args.seed)
    print(f"style fidelity of {args.model}: {args.pairs} pairs (toy val scene i drawn in the style of toy test scene i), "
          "Pearson r of per-class mean colours (result vs style photo)")
    print(format_table(with_style, control, real))
    print("r no style: the same layouts with a random latent (the control); r real: real toy photos of each layout "
          "drawn in its style photo's look (the same style seed), the measure's ceiling")
    goals = {name: with_style["classes"][name]["r"] for name in GOAL_CLASSES}
    met = all(r is not None and r >= GOAL_R for r in goals.values())
    print("goal r >= %.1f for %s: %s" % (GOAL_R, " and ".join(GOAL_CLASSES),
                                           ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in goals.items())
                                           + (" (met)" if met else " (missed)")))
    report = {
        "benchmark": "style_fidelity",
        "model": args.model,
        "pairs": args.pairs,
        "seed": args.seed,
        "with_style": with_style,
        "without_style": control,
        "real_photos": real,
        "goal": {"classes": list(GOAL_CLASSES), "min_r": GOAL_R, "met": met},
        "seconds": round(time.perf_counter() - begin, 1),
        "host": {"machine": platform.machine(), "threads": args.threads, "torch": torch.__version__},
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
