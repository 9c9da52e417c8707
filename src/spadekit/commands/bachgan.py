"""``spadekit bachgan``: BachGAN's own tools (``index``: build the retrieval memory bank)."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_set_option

INDEX_EPILOG = """\
examples:
  spadekit bachgan index --preset bachgan-toy --out toy-bank.safetensors        # toy scenes: no --data
  spadekit bachgan index --preset bachgan-cityscapes --data /data/cityscapes --out city-bank.safetensors
  spadekit bachgan index --preset bachgan-ade20k --data /data/ADEChallengeData2016 --out ade-bank.safetensors --keep 0.25

Then train with --set bachgan.bank=BANK (a run without one indexes the training split itself), and
synthesize with --bank BANK (a release model carries the bank it was trained with).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bachgan",
        help="BachGAN tools: build the memory bank of training layouts that backgrounds are retrieved from",
        description="BachGAN synthesizes a scene from object boxes; the background comes from training layouts "
        "retrieved from a memory bank (`spadekit bachgan index`).",
    )
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    index = sub.add_parser(
        "index",
        help="index a dataset's training label maps into a memory bank file",
        description="Read the training label maps of a dataset (in the preset's channel numbering, resized with "
        "nearest to the model's output size) and write the memory bank (safetensors + JSON metadata, written "
        "atomically, with a SHA-256 content hash of what was indexed; the format is in the README). Toy scenes "
        "are generated, so the toy preset needs no --data.",
        epilog=INDEX_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    index.add_argument("--preset", required=True, help="a BachGAN preset (bachgan-toy, bachgan-cityscapes, bachgan-ade20k) or a YAML file")
    index.add_argument("--data", metavar="ROOT", help="dataset root (sets data.root; toy scenes need none)")
    index.add_argument("--out", required=True, metavar="BANK", help="memory bank file to write (e.g. bank.safetensors)")
    index.add_argument("--keep", type=float, help="fraction of the training maps to index, chosen with --seed "
                       "(default bachgan.bank_keep, 1; the official scripts kept 0.25)")
    index.add_argument("--seed", type=int, help="seed choosing that fraction (default bachgan.bank_seed, 1121)")
    add_set_option(index, "config overrides, e.g. --set data.toy_scenes=500 model.width=64")
    index.add_argument("--no-progress", action="store_true", help="no progress bar")
    index.set_defaults(handler=run_index)


def run_index(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spadekit.config import load_config
    from spadekit.errors import ConfigError
    from spadekit.methods.bachgan.data import bank_source, index_dataset, open_base

    if args.keep is not None and not 0 < args.keep <= 1:
        raise ConfigError(f"--keep must be in (0, 1], got {args.keep}")
    extra = {"data": {"root": args.data}} if args.data else None
    config = load_config(args.preset, list(args.overrides or []), extra)
    if config.method != "bachgan":
        raise ConfigError(f"preset {args.preset!r} is a {config.method} preset; give a BachGAN one (`spadekit list`)")
    options = config.section("bachgan")
    keep = options.bank_keep if args.keep is None else args.keep
    seed = options.bank_seed if args.seed is None else args.seed
    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give the bank file to write (e.g. {out / 'bank.safetensors'})")
    base = open_base(config, "train", False)
    bank = index_dataset(base, config, keep=keep, seed=seed, source=bank_source(config, keep, seed), progress=not args.no_progress)
    bank.save(out)
    height, width = bank.size
    print(f"wrote {out}: {len(bank)} layouts of {bank.num_classes} classes at {width}x{height}, content hash {bank.content_hash[:16]}")
    return 0
