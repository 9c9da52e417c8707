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

Two ways of reading the style photo are measured: the encoder alone (one pass, what
``Pipeline(labels, style=photo)`` does), and the encoder's latent refined for ``--refine-steps``
steps against the style scene's own label map (``Pipeline(..., style_labels=..., refine_steps=...)``,
:mod:`spadekit.style_refine`; the layout drawn is never looked at). ``--refine-steps 0`` skips it.
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
    parser.add_argument("--refine-steps", type=int, default=100,
                        help="also measure style latents refined for this many steps (default 100; 0: the encoder only)")
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
    print("the style encoder alone:")
    print(format_table(with_style, control, real))
    refined = None
    if args.refine_steps > 0:
        refined = style_fidelity(pipe, pairs, names, use_style=True, seed=args.seed, refine_steps=args.refine_steps)
        print(f"the encoder's latent refined for {args.refine_steps} steps against the style photo's own label map:")
        print(format_table(refined, control, real))
    print("r no style: the same layouts with a random latent (the control); r real: real toy photos of each layout "
          "drawn in its style photo's look (the same style seed), the measure's ceiling")
    goal = {"classes": list(GOAL_CLASSES), "min_r": GOAL_R}
    for key, result, what in (("met", with_style, "encoder alone"), ("met_refined", refined, f"refined, {args.refine_steps} steps")):
        if result is None:
            continue
        rs = {name: result["classes"][name]["r"] for name in GOAL_CLASSES}
        goal[key] = all(r is not None and r >= GOAL_R for r in rs.values())
        print("goal r >= %.1f for %s (%s): %s%s" % (
            GOAL_R, " and ".join(GOAL_CLASSES), what,
            ", ".join(f"{k} {v:.3f}" if v is not None else f"{k} -" for k, v in rs.items()),
            " (met)" if goal[key] else " (missed)"))
    report = {
        "benchmark": "style_fidelity",
        "model": args.model,
        "pairs": args.pairs,
        "seed": args.seed,
        "refine_steps": args.refine_steps,
        "with_style": with_style,
        "with_style_refined": refined,
        "without_style": control,
        "real_photos": real,
        "goal": goal,
        "seconds": round(time.perf_counter() - begin, 1),
        "host": {"machine": platform.machine(), "threads": args.threads, "torch": torch.__version__},
    }
    if args.out:
        atomic_write_text(args.out, json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
