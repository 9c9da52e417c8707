"""``spadekit train``: one command from one CPU to many GPUs (under torchrun) and nodes."""

from __future__ import annotations

import argparse
from pathlib import Path

from spadekit.commands._options import add_device_option, add_set_option

EPILOG = """\
examples:
  spadekit train --preset toy --out runs/toy                       # toy scenes made in memory
  spadekit train --preset coco --data /data/cocostuff --out runs/coco --set train.batch_size=8
  spadekit train --preset coco --data D --out runs/coco --resume auto          # continue a run
  spadekit train --preset coco --data D --out runs/ft --init-from checkpoints/coco_pretrained
  torchrun --nproc-per-node 8 --no-python spadekit train --preset coco --data D --out runs/coco

train.batch_size is the global batch: under torchrun it is split over the processes (and over
train.grad_accum micro-batches). Only rank 0 writes RUN_DIR: config.json, metrics.jsonl,
tensorboard/, gallery/index.html, checkpoints/step-*.pt and model/ (the release format, for
`spadekit synthesize --model RUN_DIR/model`).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model of any method (CPU, GPU, or many GPUs/nodes under torchrun)",
        description="Train a model from a preset (its method: SPADE, OASIS, ...; `spadekit list`) and a dataset; "
        "resumable, observable, multi-GPU under torchrun.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--preset", default="toy", help="preset name (`spadekit list`) or a YAML file (default: toy)")
    parser.add_argument("--data", metavar="ROOT", help="dataset root (sets data.root; the toy preset needs none)")
    parser.add_argument("--out", metavar="RUN_DIR", help="run directory for checkpoints, logs, gallery and model/")
    parser.add_argument("--steps", type=int, metavar="N", help="generator updates in total (default: all epochs of the preset)")
    parser.add_argument("--checkpoint-every", type=int, metavar="N", help="write a checkpoint every N steps (train.checkpoint_every)")
    parser.add_argument(
        "--resume",
        metavar="auto|PATH",
        help="continue from the latest checkpoint in RUN_DIR (auto; a fresh start when there is none) or a checkpoint file",
    )
    add_set_option(parser, "override config fields, e.g. --set model.ngf=32 train.lr=1e-4")
    parser.add_argument(
        "--init-from",
        metavar="MODEL",
        help="fine-tune: start G (and E) from a release model directory, a bundled model name or a folder of "
        "official checkpoints (latest_net_G.pth, read with --preset); D starts fresh; the model section comes from MODEL",
    )
    parser.add_argument(
        "--init-parts",
        nargs="+",
        metavar="PART",
        help="with --init-from: the parts to copy from MODEL (default: generator and encoder); e.g. "
        "--init-parts generator starts a new style encoder",
    )
    parser.add_argument("--no-vgg", action="store_true", help="train without the VGG19 perceptual loss (loss.lambda_vgg=0)")
    add_device_option(parser, "training runs (under torchrun: cuda means each process's own GPU)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config, parameter counts and plan, then exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs still go to metrics.jsonl)")
    parser.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard event files")
    parser.set_defaults(handler=run)


def _is_official_dir(path: str) -> bool:
    from spadekit.conversion import detect_format

    folder = Path(path)
    return folder.is_dir() and not (folder / "config.json").exists() and detect_format(folder) is not None


def resolve_config(args: argparse.Namespace):
    """(config, init_model or None) from the options; the model section follows ``--init-from``."""
    from spadekit.config import config_from_dict, load_config, parse_overrides

    overrides = list(args.overrides or [])
    if args.no_vgg:
        overrides.append("loss.lambda_vgg=0")
    if args.checkpoint_every is not None:
        overrides.append(f"train.checkpoint_every={args.checkpoint_every}")
    extra = {"data": {"root": args.data}} if args.data else None
    config = load_config(args.preset, overrides, extra)
    if not args.init_from:
        return config, None
    from spadekit.release import load_model

    model_overrides = [o for o in overrides if o.strip().startswith("model.")]
    official = _is_official_dir(args.init_from)
    init_model = load_model(args.init_from, preset=args.preset if official else None, overrides=model_overrides if official else None)
    values = config.to_dict()
    values["model"] = {**init_model.config.model.__dict__, **parse_overrides(model_overrides).get("model", {})}
    values["method"] = init_model.config.method
    source = init_model.config.to_dict()
    if init_model.config.method in source:  # the method's own architecture options come with the weights
        values[init_model.config.method] = source[init_model.config.method]
    for key in ("class_names", "colors"):
        if values["data"].get(key) is None and getattr(init_model.config.data, key) is not None:
            values["data"][key] = getattr(init_model.config.data, key)
    return config_from_dict(values), init_model


def run(args: argparse.Namespace) -> int:
    from spadekit.errors import ConfigError
    from spadekit.training.distributed import cleanup_distributed, setup_distributed

    if not args.out and not args.dry_run:
        raise ConfigError("--out RUN_DIR is required (where checkpoints, logs and the model go)")
    if args.init_parts and not args.init_from:
        raise ConfigError("--init-parts needs --init-from MODEL (the model the parts are copied from)")
    env = setup_distributed(args.device)
    try:
        config, init_model = resolve_config(args)
        from spadekit.data.transforms import check_training_sizes
        from spadekit.methods import method_of

        # Before anything is built, the dry run included.
        check_training_sizes(config.model, config.data, method_of(config).training_size_of(config))
        if args.dry_run:
            return _dry_run(config, env, args)
        from spadekit.training.setup import build_trainer

        trainer = build_trainer(
            config,
            Path(args.out),
            env=env,
            steps=args.steps,
            init_model=init_model,
            init_source=str(args.init_from),
            init_parts=args.init_parts,
            resume=args.resume,
            progress=not args.no_progress,
            tensorboard=not args.no_tensorboard,
        )
        result = trainer.fit()
        if env.is_main:
            print(f"done: {result.step} steps; checkpoint {result.checkpoint}; model {result.model_dir} "
                  f"(spadekit synthesize --model {result.model_dir})")
            _warn_short_ema(config.train.ema_decay, result.step, result.model_dir)
        return 0
    finally:
        cleanup_distributed()


def _warn_short_ema(decay: float, steps: int, model_dir) -> None:
    """Say so when the released EMA generator averaged fewer steps than its horizon."""
    import sys

    from spadekit.training.ema import ema_horizon

    if decay and steps < ema_horizon(decay):
        print(f"warning: {model_dir} holds the EMA generator after {steps} steps, fewer than the EMA horizon of "
              f"{ema_horizon(decay)} steps (train.ema_decay={decay}): it lags the raw generator; train longer, or "
              "set train.ema_decay=0 to release the raw generator", file=sys.stderr)


def _dry_run(config, env, args: argparse.Namespace) -> int:
    from spadekit.errors import SpadekitError
    from spadekit.training.setup import build_vgg, open_training_data, plan_only

    size = None
    note = ""
    try:
        size = len(open_training_data(config))
    except SpadekitError as exc:
        note = f"data: not available ({exc})"
    if env.is_main:
        print(config.to_json())
        plan = plan_only(config, env, size)
        if args.steps is not None:
            from dataclasses import replace

            plan = replace(plan, options=replace(plan.options, total_steps=args.steps))
        print(plan.describe())
        if note:
            print(note)
        if config.loss.lambda_vgg > 0:
            try:
                build_vgg(config)
                print("VGG19 weights: found")
            except SpadekitError as exc:
                print(f"VGG19 weights: missing ({exc})")
    return 0
