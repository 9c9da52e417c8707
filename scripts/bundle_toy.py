"""Turn a finished toy training run into the bundled model ``src/spadekit/bundled/toy``.

    spadekit train --preset toy --out runs/toy                 # ~1 hour on a 2-core CPU
    spadekit evaluate --model runs/toy/model --preset toy --out runs/toy/eval.json
    python scripts/bundle_toy.py runs/toy --eval runs/toy/eval.json

The generator and encoder are stored in float16 (halving the package size; the networks still run
in float32 after loading), the discriminator is left out (it only matters for further training:
fine-tune with ``--init-from toy`` and a fresh discriminator). A model card records the command,
steps, wall time and evaluation numbers.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "spadekit" / "bundled" / "toy"


def training_summary(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # Wall time = sum of the intervals between consecutive log records (resumed runs restart the clock).
    seconds = 0.0
    for previous, current in zip(records, records[1:]):
        gap = current["time"] - previous["time"]
        if 0 < gap < 3600 and current["step"] > previous["step"]:
            seconds += gap
    return {"steps": records[-1]["step"], "hours": seconds / 3600, "last": records[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of `spadekit train --preset toy`")
    parser.add_argument("--eval", type=Path, help="report JSON of `spadekit evaluate` on this model")
    parser.add_argument("--command", default="spadekit train --preset toy --out runs/toy", help="training command for the card")
    parser.add_argument(
        "--eval-command",
        default="spadekit evaluate --model toy --preset toy --max-images 200 --real-reference --out eval.json",
        help="evaluation command for the card",
    )
    args = parser.parse_args()

    model_dir = args.run / "model"
    staging = TARGET.with_name(".toy.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy(model_dir / "config.json", staging / "config.json")
    for part in ("generator", "encoder"):
        source = model_dir / f"{part}.safetensors"
        if source.exists():
            state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(source)).items()}
            save_file(state, str(staging / f"{part}.safetensors"), metadata={"format": "pt", "dtype": "float16"})

    summary = training_summary(args.run)
    evaluation = json.loads(args.eval.read_text()) if args.eval else None
    config = json.loads((model_dir / "config.json").read_text())["config"]
    m = config["model"]
    lines = [
        "# Bundled model: toy",
        "",
        "A SPADE generator with a VAE style encoder trained on spadekit's procedural toy-scenes world",
        f"({len(config['data']['class_names'])} classes: {', '.join(config['data']['class_names'])}).",
        "It exists so that spadekit works out of the box with no download; it is not a model of real photos.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | SPADE, ngf {m['ngf']}, SPADE hidden {m['spade_hidden']}, {m['width']}×{m['width']}, "
        f"norm {m['norm_G']}, instance edges, VAE (z {m['z_dim']}) |",
        f"| training command | `{args.command}` |",
        f"| steps | {summary['steps']} generator updates, batch {config['train']['batch_size']}, "
        f"EMA {config['train']['ema_decay']} |",
        f"| wall time | {summary['hours']:.2f} h on a shared 2-core CPU (fp32, one thread) |",
        "| losses | hinge GAN + feature matching + KL (no VGG: its ImageNet weights are not bundled) |",
        "| storage | generator and encoder in float16 safetensors (loaded into float32); no discriminator |",
        "| last logged losses | " + ", ".join(f"{k} {v:.3f}" for k, v in summary["last"].items() if k.startswith(("G_", "D_", "KLD"))) + " |",
    ]
    if evaluation:
        metrics = evaluation.get("metrics", evaluation)
        shown = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        lines += ["", "## Evaluation (toy protocol)", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" for k, v in shown.items()]
        reference = evaluation.get("real_reference", {})
        if isinstance(reference.get("miou"), float):
            lines += [f"| real toy photos (segmenter upper bound): miou | {reference['miou']:.4g} |"]
        lines += [
            "",
            f"Measured with `{args.eval_command}` (the bundled toy segmenter; mIoU and accuracy as fractions;",
            "the toy FID uses the toy segmenter's features and only ranks toy models).",
        ]
    (staging / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")

    shutil.rmtree(TARGET, ignore_errors=True)
    staging.rename(TARGET)
    for file in TARGET.iterdir():
        file.chmod(0o644)
    size = sum(p.stat().st_size for p in TARGET.iterdir())
    print(f"wrote {TARGET} ({size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
