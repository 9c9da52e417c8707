"""Turn a finished ``asapnet-toy`` training run into the bundled model ``src/spadekit/bundled/toy-asapnet``.

    spadekit train --preset asapnet-toy --out runs/asapnet-toy
    spadekit evaluate --model runs/asapnet-toy/model --preset asapnet-toy --max-images 200 --real-reference --out runs/asapnet-toy/eval.json
    python scripts/bundle_asapnet_toy.py runs/asapnet-toy --eval runs/asapnet-toy/eval.json --reference-miou 0.7014

It is bundled only when its toy mIoU is within 10 points of the bundled SPADE toy model's
(``--reference-miou``, from that model's card); the generator is stored in float16 (it runs in
float32 after loading), without the discriminator. ``spadekit studio --model toy-asapnet`` then
offers it as the fast choice.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bundle_toy import training_summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "spadekit" / "bundled" / "toy-asapnet"
MARGIN = 0.10
REGRESSION_SCENES = 16
FLOOR_MARGINS = {"miou": 0.03, "accuracy": 0.01}


def regression_floor(model_dir: Path) -> list[str]:
    """The card's "Regression floor" table: the toy protocol on the fixed small set that
    tests/test_bundled_asapnet.py evaluates (REGRESSION_SCENES validation scenes), less a margin."""
    from spadekit.evaluation.evaluate import evaluate

    report = evaluate(str(model_dir), preset="asapnet-toy", metrics="miou,accuracy", max_images=REGRESSION_SCENES, progress=False)
    rows = [(name, report["metrics"][name], report["metrics"][name] - margin) for name, margin in FLOOR_MARGINS.items()]
    return [
        "",
        "## Regression floor",
        "",
        f"The toy protocol on the first {REGRESSION_SCENES} validation scenes, measured on these weights, and the floor",
        "tests/test_bundled_asapnet.py holds the bundled model to (measured less a margin for float noise",
        "across machines):",
        "",
        "| metric | measured | floor |",
        "|---|---|---|",
        *[f"| {name} | {value:.4f} | {floor:.4f} |" for name, value, floor in rows],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of `spadekit train --preset asapnet-toy`")
    parser.add_argument("--eval", type=Path, required=True, help="report JSON of `spadekit evaluate` on its model")
    parser.add_argument("--reference-miou", type=float, required=True, help="toy mIoU (fraction) of the bundled SPADE toy model")
    parser.add_argument("--command", default="spadekit train --preset asapnet-toy --out runs/asapnet-toy")
    args = parser.parse_args()

    evaluation = json.loads(args.eval.read_text())
    miou = evaluation["metrics"]["miou"]
    if miou < args.reference_miou - MARGIN:
        print(f"not bundled: toy mIoU {miou:.3f} is more than {MARGIN:.2f} below the SPADE toy model's {args.reference_miou:.3f}")
        return 1
    model_dir = args.run / "model"
    staging = TARGET.with_name(".toy-asapnet.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy(model_dir / "config.json", staging / "config.json")
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(model_dir / "generator.safetensors")).items()}
    save_file(state, str(staging / "generator.safetensors"), metadata={"format": "pt", "dtype": "float16"})

    summary = training_summary(args.run)
    config = json.loads((model_dir / "config.json").read_text())["config"]
    m, o = config["model"], config["asapnet"]
    metrics = {k: v for k, v in evaluation["metrics"].items() if isinstance(v, (int, float))}
    lines = [
        "# Bundled model: toy-asapnet",
        "",
        "An ASAPNet generator trained on spadekit's procedural toy-scenes world: the fast choice for the studio",
        "(`spadekit studio --model toy-asapnet`). It is not a model of real photos.",
        "",
        "| | |",
        "|---|---|",
        f"| architecture | ASAPNet, {m['width']}×{m['width']}, tile {m['width'] // 16}, learned ×{o['learned_downsampling']}, "
        f"low-res {o['lr_width']}→{o['lr_max_width']} × {o['lr_depth']} blocks, pixel MLP {o['hr_depth']} × {o['hr_width']}, instance edges |",
        f"| training command | `{args.command}` |",
        f"| steps | {summary['steps']} generator updates, batch {config['train']['batch_size']}, EMA {config['train']['ema_decay']} |",
        f"| wall time | {summary['hours']:.2f} h on a shared 2-core CPU (fp32, one thread) |",
        "| losses | hinge GAN + feature matching (no VGG) |",
        "| storage | generator in float16 safetensors (loaded into float32); no discriminator |",
        "",
        "## Evaluation (toy protocol)",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.4g} |" for k, v in metrics.items()],
        f"| the bundled SPADE toy model's miou | {args.reference_miou:.4g} |",
        "",
        "Measured with `spadekit evaluate --model toy-asapnet --preset asapnet-toy --max-images 200 --real-reference`.",
    ]
    (staging / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    lines += regression_floor(staging)
    (staging / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")
    shutil.rmtree(TARGET, ignore_errors=True)
    staging.rename(TARGET)
    for file in TARGET.iterdir():
        file.chmod(0o644)
    print(f"wrote {TARGET} ({sum(p.stat().st_size for p in TARGET.iterdir()) / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
