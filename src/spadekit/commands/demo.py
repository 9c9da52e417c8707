"""``spadekit demo``: a gallery of toy scenes synthesized by the bundled model."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option, refine_steps_type, seed_type


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="render a demo gallery (HTML + PNGs) from toy label maps with the bundled model",
        description="Render toy-scene layouts at fixed seeds, synthesize them and write DIR/index.html with the "
        "label maps, results and the toy photos, a style-guided row (styles taken from other toy photos), the same "
        "styles refined against their label maps, and a multi-sample row. Uses the bundled model 'toy' unless "
        "--model says otherwise; takes seconds on a CPU.",
    )
    parser.add_argument("--out", required=True, help="folder for index.html and the PNGs (e.g. demo/, which .gitignore "
                        "keeps out of a spadekit checkout)")
    parser.add_argument("--model", default="toy", help="model whose classes are the toy classes (default: bundled 'toy')")
    parser.add_argument("--scenes", type=int, default=4, help="layouts to show (default 4)")
    parser.add_argument("--samples", type=int, default=4, help="styles and samples in the style/multi-sample rows (default 4)")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed of the layouts and latents (default 0; 0..2**63-1)")
    parser.add_argument("--refine-steps", type=refine_steps_type, default=100,
                        help="steps of the refined style row, as synthesize's --refine-steps (default 100; 0 leaves the "
                        "row out)")
    add_device_option(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from spadekit.commands._options import pick_device
    from spadekit.demo import render_demo
    from spadekit.errors import CheckpointError, ConfigError
    from spadekit.inference import Pipeline
    from spadekit.release import bundled_models

    if args.scenes < 1 or args.samples < 1:
        raise ConfigError("--scenes and --samples must be >= 1")
    if args.model == "toy" and "toy" not in bundled_models():
        from pathlib import Path

        if not Path("toy").exists():
            raise CheckpointError(
                "toy: the bundled toy model is not in this installation; train one with "
                "`spadekit train --preset toy` and pass its release directory with --model"
            )
    pipeline = Pipeline.from_pretrained(args.model, device=pick_device(args.device))
    index = render_demo(pipeline, args.out, scenes=args.scenes, samples=args.samples, seed=args.seed,
                        refine_steps=args.refine_steps)
    print(f"wrote {index}")
    return 0
