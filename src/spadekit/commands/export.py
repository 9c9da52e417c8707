"""``spadekit export``: a generator as ONNX or TorchScript."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model's generator to ONNX or TorchScript",
        description="Write the generator (spectral norm folded, eval mode) as one file. Inputs: 'semantics' "
        "(N, S, H, W) float32 one-hot label map (S = label_nc, +1 don't-care channel at index label_nc, +1 "
        "instance-edge map last) and, for VAE models, 'z' (N, z_dim) float32. Output: 'image' (N, 3, H, W) in "
        "[-1, 1]. N is dynamic. The channel layout, class names and colours are stored in the file (ONNX metadata "
        "'spadekit', TorchScript extra file 'spadekit.json'). After writing, the file is run once against PyTorch "
        "and the max abs difference is printed.",
    )
    parser.add_argument("model", help="release model directory, bundled model name or official checkpoint folder")
    parser.add_argument("--format", dest="fmt", choices=["onnx", "torchscript"], required=True, help="file format")
    parser.add_argument("--size", help="WxH of the exported graph (default: the model size; another size needs a non-VAE "
                        "model; within the picture limits: 8..4096 pixels a side)")
    parser.add_argument("--out", required=True, help="file to write (e.g. model.onnx, model.pt)")
    parser.add_argument("--preset", help="layout of official checkpoints")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--no-check", dest="check", action="store_false", help="skip the comparison run against PyTorch")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from spadekit.data.inputs import parse_size
    from spadekit.export import check_export, describe, export_model
    from spadekit.inference import model_at_size
    from spadekit.release import layout_to_image, load_model

    size = parse_size(args.size, "--size") if args.size else None
    loaded = load_model(args.model, preset=args.preset)
    model = layout_to_image(loaded)
    if model is not loaded:
        print(f"{args.model} makes layouts: exporting its layout->image model ({model.config.preset})")
    size = size or tuple(model.output_size)
    model = model_at_size(model, size)
    path = export_model(model, args.fmt, args.out, size, opset=args.opset)
    info = describe(model, size)
    inputs = ", ".join(f"{name} {tuple(shape)}" for name, shape in info["inputs"].items())
    print(f"wrote {path} ({args.fmt}; inputs: {inputs}; output: image (N, 3, {size[1]}, {size[0]}) in [-1, 1])")
    if args.check:
        try:
            difference = check_export(model, args.fmt, path, size)
        except ImportError as exc:
            print(f"skipped the check: {exc}")
        else:
            print(f"check: max abs difference from PyTorch {difference:.2e}")
    return 0
