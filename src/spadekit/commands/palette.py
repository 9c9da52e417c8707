"""``spadekit palette``: class proportions → layouts → photos (``palette sample``), and fitting a model's
palette mixture to a dataset (``palette fit``)."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option, add_set_option, seed_type

SAMPLE_EPILOG = """\
examples:
  spadekit palette sample --model runs/palette-toy/model --proportions "sky=0.4,road=0.3,tree=0.1,grass=0.2" \\
      --num-samples 4 --out palette-out/
  spadekit palette sample --model runs/palette-toy/model --num-samples 8 --seed 3 --out sampled/   # palettes from the mixture

Proportions are NAME=VALUE pairs (class names as in `spadekit list` / the model's config; values may be
percentages, 40%); classes not named get 0. Unknown names, negative values and totals outside 0.75..1.25 are
errors (exit 2, nothing written); a total within that range but not 1 is rescaled, with a notice. Without
--proportions each sample draws its own palette from the mixture fitted to the training layouts.
OUT receives labels_K.png (class ids, what `spadekit synthesize` reads), layout_K.png (coloured), photo_K.png,
contact_sheet.png (per row: requested | achieved proportions as stacked bars, layout, photo) and palettes.json
(requested and achieved proportions per sample, the seed).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "palette",
        help="Semantic Palette: class proportions -> layouts -> photos; fit a model's palette mixture",
        description="Generate scene layouts from class proportions (a \"palette\") and turn them into photos with "
        "a layout->image model (the palette model's own, or --image-model).",
    )
    sub = parser.add_subparsers(dest="palette_command", metavar="ACTION", required=True)
    sample = sub.add_parser(
        "sample",
        help="layouts and photos from class proportions (or from palettes the model samples)",
        description="Write layouts and photos generated from the given class proportions, plus a contact sheet.",
        epilog=SAMPLE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sample.add_argument("--model", required=True, help="palette model: a release folder or official checkpoints "
                        "(seg_g_net_<n>.pth)")
    sample.add_argument("--proportions", metavar="NAME=P,...", help='e.g. "sky=0.4,road=0.3,tree=0.1,grass=0.2" '
                        "(default: palettes sampled from the model's mixture)")
    sample.add_argument("--num-samples", type=int, default=4, metavar="N", help="layouts to generate (default 4)")
    sample.add_argument("--seed", type=seed_type, help="sample k uses seed + k (default: a random seed, printed)")
    sample.add_argument("--out", required=True, metavar="DIR", help="output folder (created)")
    sample.add_argument("--image-model", metavar="MODEL", help="layout->image model for the photos (release folder or "
                        "bundled name; default: the palette model's palette.image_model)")
    sample.add_argument("--no-images", action="store_true", help="layouts only")
    add_device_option(sample, "the networks run")
    sample.set_defaults(handler=run_sample)

    fit = sub.add_parser(
        "fit",
        help="fit a palette model's mixture to a dataset's training layouts",
        description="Fit the Gaussian mixture that samples realistic palettes (components chosen by AIC, as the "
        "paper) to the class proportions of a dataset's training label maps, and write the model with it to --out. "
        "Training fits it before the first step; use this for converted official models (whose mixture is a pickle "
        "spadekit never reads) or to fit another dataset.",
    )
    fit.add_argument("--model", required=True, help="palette model (release folder or official checkpoints)")
    fit.add_argument("--out", required=True, metavar="DIR", help="where to write the model with the fitted mixture")
    fit.add_argument("--data", metavar="ROOT", help="dataset root (default: the model's data.root; toy scenes need none)")
    fit.add_argument("--preset", help="dataset preset for the data layout (default: the model's own)")
    fit.add_argument("--max-images", type=int, metavar="N", help="fit on the first N training label maps (default all)")
    fit.add_argument("--max-components", type=int, metavar="K",
                     help="largest component count AIC may pick (default and at most: the model's palette.max_components)")
    add_set_option(fit, "override data options of the preset, e.g. --set data.toy_scenes=500")
    fit.set_defaults(handler=run_fit)


def run_sample(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from spadekit.commands._options import pick_device
    from spadekit.errors import ConfigError
    from spadekit.io import atomic_write, atomic_write_text
    from spadekit.methods.palette.pipeline import PalettePipeline, contact_sheet
    from spadekit.release import load_model

    if args.num_samples < 1:
        raise ConfigError("--num-samples must be >= 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a folder")
    device = pick_device(args.device)
    pipe = PalettePipeline(load_model(args.model, device=device), device=device, image_model=args.image_model)
    if args.proportions is not None:
        pipe.check(args.proportions)  # every input error before anything is generated or written
    result = pipe(args.proportions, num_samples=args.num_samples, seed=args.seed, images=not args.no_images)
    if result.notice:
        print(f"notice: {result.notice}")

    def save(picture, name: str) -> None:
        atomic_write(out / name, lambda tmp, p=picture: p.save(tmp, format="PNG"))

    out.mkdir(parents=True, exist_ok=True)
    for k, (ids, layout) in enumerate(zip(result.label_maps(), result.layout_pictures())):
        save(ids, f"labels_{k}.png")
        save(layout, f"layout_{k}.png")
        if result.images is not None:
            save(result.images[k], f"photo_{k}.png")
    save(contact_sheet(result, pipe.class_names), "contact_sheet.png")
    names = pipe.class_names
    record = {
        "seed": result.seed,
        "classes": names,
        "source": "given" if args.proportions is not None else "sampled from the model's mixture",
        "notice": result.notice,
        "samples": [
            {"requested": dict(zip(names, map(float, req))), "achieved": dict(zip(names, map(float, ach)))}
            for req, ach in zip(result.palettes.tolist(), result.achieved.tolist())
        ],
    }
    atomic_write_text(out / "palettes.json", json.dumps(record, indent=2) + "\n")
    what = "layouts and photos" if result.images is not None else "layouts"
    print(f"wrote {args.num_samples} {what} (seed {result.seed}) and contact_sheet.png to {out}")
    return 0


def run_fit(args: argparse.Namespace) -> int:
    import dataclasses

    from spadekit.config import load_config
    from spadekit.data import open_dataset
    from spadekit.errors import ConfigError
    from spadekit.methods.palette.parts import fit_mixture
    from spadekit.methods.palette.training import dataset_proportions
    from spadekit.release import load_model

    bad = [item for item in args.overrides if not item.strip().startswith("data.")]
    if bad:
        raise ConfigError(f"--set {bad[0]}: palette fit only overrides data options (data.KEY=VALUE)")
    model = load_model(args.model)
    if "palette" not in model.method.capabilities or "mixture" not in model.extras:
        raise ConfigError(f"{args.model}: not a palette model with a mixture part")
    mixture = model.extras["mixture"]
    o = model.config.section("palette")
    top = args.max_components or o.max_components
    if not 1 <= top <= mixture.max_components:
        raise ConfigError(f"--max-components must be in 1..{mixture.max_components} (the room in this model)")
    preset = args.preset or model.config.preset
    data = load_config(preset, list(args.overrides)).data
    data = dataclasses.replace(data, root=args.data if args.data is not None else data.root)
    dataset = open_dataset(data.root, preset=preset, split="train", train=False, data=data, model=model.config.model)
    table = dataset_proportions(dataset, model.config.model.label_nc, args.max_images)
    sampler = fit_mixture(table, top, min(o.min_components, top), seed=0, projection=o.projection)
    mixture.store(sampler)
    model.provenance = {**(model.provenance or {}), "mixture": f"fitted by `spadekit palette fit` on {len(table)} "
                        f"{preset} training layouts ({data.root or 'generated'})"}
    model.save(args.out)
    print(f"palette mixture: {sampler.n_components} component(s) chosen by AIC over {len(table)} layouts; "
          f"model written to {args.out}")
    return 0
