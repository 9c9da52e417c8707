"""BachGAN on toy scenes: a scene from object boxes alone, against SPADE with more or less input.

BachGAN's claim (Li et al. 2020) is that object boxes alone, with backgrounds retrieved from a
memory bank of training layouts, give better images than a SPADE model driven by the same boxes,
while SPADE given the full label map stays the upper bound. This script repeats that comparison
in the toy world with one budget for all three (steps, batch, size, widths, losses, optimiser):

* **BachGAN** (``spadekit train --preset bachgan-toy``): the boxes of the buildings, trees, cars and
  persons + 3 layouts retrieved from the bank of the training label maps;
* **SPADE, full label map** (``spadekit train --preset toy``): every pixel's class + instance edges;
* **SPADE, box layout**: SPADE trained on box layouts as its label maps (the boxes painted in their
  classes, every other pixel one "no object" class). It runs in this process, as a method
  registered here (``spade-boxes``: SPADE's networks with the box layout as input), so the same
  trainer and ``evaluate`` measure it.

All three are evaluated with the toy protocol on the same validation scenes: the segmenter reads
the generated image and is scored against the scene's *full* label map, so a model that invents
a plausible background scores, one that does not is penalised. Writes a section of
``docs/reproduction.md`` (between ``<!-- bachgan-toy:begin -->`` and ``<!-- bachgan-toy:end -->``)
and a JSON summary.

    python benchmarks/reproduce_bachgan_toy.py --threads 1              # 64x64, 600 steps each
    python benchmarks/reproduce_bachgan_toy.py --steps 30 --val-images 32 --docs /tmp/docs   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

from spadekit.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reproduce_toy as toy  # noqa: E402  (the shared command runner and path display)

REPO = toy.REPO
BEGIN, END = "<!-- bachgan-toy:begin -->", "<!-- bachgan-toy:end -->"
NO_OBJECT = 12  # the box layout's "no object" class: the toy preset's 12 classes + this one (SPADE's don't-care channel)


def budget(args: argparse.Namespace) -> list[str]:
    """Overrides shared by the three runs (those of benchmarks/reproduce_toy.py)."""
    w = args.size
    values = [
        f"model.width={w}", f"data.crop_size={w}", f"data.load_size={w + w // 8}", "model.use_vae=false",
        f"model.ngf={args.ngf}", f"model.ndf={args.ndf}", f"model.spade_hidden={args.spade_hidden}", "model.norm_G=batch",
        f"train.batch_size={args.batch_size}", f"train.seed={args.seed}", "data.toy_scenes=1000", "data.toy_seed=0",
        "train.ema_decay=0", "train.epochs=1000", "train.epochs_decay=0", "train.lr=0.0002", "train.ttur=true",
        "loss.gan_mode=hinge", "loss.lambda_feat=10", "loss.lambda_vgg=0", "model.num_D=2", "model.n_layers_D=4",
        f"train.log_every={max(1, args.steps // 20)}", f"train.image_every={args.steps}",
        f"train.checkpoint_every={args.steps}",
    ]
    return values


# ----------------------------------------------------------------------------- SPADE on box layouts


def register_spade_boxes():
    """``spade-boxes``: SPADE's networks and objective, its input the painted box layout of each item."""
    import torch

    from spadekit.methods import get_method, register_method
    from spadekit.methods.bachgan.boxes import draw_box_layout
    from spadekit.methods.bachgan.extract import toy_boxes
    from spadekit.methods.base import Batch

    class BoxMaps(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, index):
            item = self.base[index]
            label, instance = item["label"][0].numpy(), item.pop("instance")[0].numpy()
            h, w = label.shape
            _, painted = draw_box_layout(toy_boxes(label, instance), NO_OBJECT + 1, h, w, background=NO_OBJECT,
                                         construction="onehot")
            item["box_map"] = painted[None]
            return item

    def open_data(config, split, train, assets):
        from spadekit.data import open_dataset

        model = replace(config.model, use_instance=True)  # the instance maps give the boxes
        return BoxMaps(open_dataset(config.data.root, preset=config.preset, split=split, train=train, data=config.data, model=model))

    def prepare_batch(raw, config, device, non_blocking=False):
        index = raw["box_map"].to(device)[:, 0]
        semantics = torch.zeros(index.shape[0], NO_OBJECT + 1, *index.shape[1:], device=device)
        semantics.scatter_(1, index[:, None], 1.0)
        return Batch(semantics, raw["image"].to(device))

    spade = get_method("spade")
    return register_method(replace(spade, name="spade-boxes", title="SPADE (box layout)", open_data=open_data,
                                   prepare_batch=prepare_batch, fast_generator=None, toy_preset=None, tiny_overrides=()))


def train_spade_boxes(args: argparse.Namespace, run_dir: Path) -> float:
    from spadekit.config import load_config
    from spadekit.training.setup import build_trainer

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_config("toy", budget(args) + ["model.contain_dontcare=true", "model.use_instance=false"],
                         extra={"method": "spade-boxes"})
    begin = time.perf_counter()
    trainer = build_trainer(config, run_dir, steps=args.steps, progress=False, tensorboard=False, log=print)
    trainer.fit()
    return time.perf_counter() - begin


# ----------------------------------------------------------------------------- the page


def _pct(value):
    return "n/a" if value is None else f"{100 * value:.1f}"


def section(summary: dict) -> str:
    runs = summary["runs"]
    rows = []
    for key in ("spade_full", "bachgan", "spade_boxes"):
        r = runs[key]
        m = r["report"]["metrics"]
        rows.append(
            f"| {r['label']} | {r['input']} | {r['parameters_G'] / 1e6:.2f}M | {_pct(m.get('miou'))} | {_pct(m.get('accuracy'))} | "
            f"{m['fid']:.2f} | {r['train_seconds'] / 60:.1f} min |"
        )
    real = runs["spade_full"]["report"].get("real_reference", {})
    b, s = runs["bachgan"]["report"]["metrics"], runs["spade_boxes"]["report"]["metrics"]
    per_class = []
    for cls in runs["bachgan"]["report"].get("per_class_iou", {}):
        values = [runs[k]["report"]["per_class_iou"].get(cls) for k in ("spade_full", "bachgan", "spade_boxes")]
        per_class.append(f"| {cls} | " + " | ".join(_pct(v) for v in values) + " |")
    commands = "\n".join(summary["commands"])
    verdict = (f"BachGAN − SPADE on the box layout: mIoU {100 * (b['miou'] - s['miou']):+.1f} points, pixel accuracy "
               f"{100 * (b['accuracy'] - s['accuracy']):+.1f} points, toy FID {b['fid'] - s['fid']:+.2f}. "
               + conclusion(runs))
    bu = summary["budget"]
    return f"""{BEGIN}
## BachGAN on toy scenes: boxes only

BachGAN (Li et al. 2020) draws a scene from its object boxes alone: layouts of similar training
scenes are retrieved from a memory bank and fused with the boxes. The paper compares it with SPADE
driven by the same boxes and with SPADE given the full segmentation (the upper bound). The same
three, trained with one budget on toy scenes, measured with the toy protocol on
{summary['val_images']} validation scenes at {bu['size']}×{bu['size']} (segmentation scored against each
scene's **full** label map; measured on {summary['machine']}, {summary['date']}; written by
`benchmarks/reproduce_bachgan_toy.py`):

| model | input | G params | mIoU ↑ | pixel acc. ↑ | toy FID ↓ | training |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}
| *real photos* | | | {_pct(real.get('miou'))} | {_pct(real.get('accuracy'))} | — | |

{verdict}

Per-class IoU (%), full label map / BachGAN / box layout:

| class | SPADE (full) | BachGAN | SPADE (boxes) |
|---|---|---|---|
{chr(10).join(per_class)}

Setup: {bu['steps']} steps × {bu['batch_size']}, ngf {bu['ngf']}, ndf {bu['ndf']}, SPADE hidden width
{bu['spade_hidden']}, batch norm in SPADE, hinge GAN + feature matching (no VGG, no VAE, no EMA), TTUR,
1000 training scenes, seed {bu['seed']} (the settings of the SPADE/pix2pixHD comparison above). BachGAN
retrieves k = 3 layouts from the bank of the 1000 training label maps (built when the run starts,
carried by the release model; a scene never retrieves itself in training); the box layout is the
official construction. SPADE on boxes sees the boxes painted in their classes (the last box wins
where they overlap) and a 13th "no object" class elsewhere; SPADE on the full map also gets the
instance edges. Object boxes come from the toy instance maps (buildings, trees, cars, persons);
windows, like every stuff class, are left to the models.

Commands (every one with `OMP_NUM_THREADS={summary['threads'] or 'default'}`; SPADE on box layouts is trained and
evaluated inside the script, with the same trainer and `evaluate`):

```
{commands}
```

All at once: `python benchmarks/reproduce_bachgan_toy.py {summary['driver_args']}` ({summary['total_minutes']:.1f} minutes in
all on {summary['machine']}, shared with other work while it ran).

Caveats: one run per model and short budgets, so the differences are measured, not averaged over
seeds; the toy world is simple (12 classes, backgrounds drawn by a few rules), so the comparison of
the three under one budget is the point, not the values; the paper's numbers (Cityscapes, ADE20K)
are not comparable with these.
{END}
"""


def conclusion(runs: dict) -> str:
    """What the numbers say, in words (no more than they say)."""
    full, b, s = (runs[k]["report"]["metrics"] for k in ("spade_full", "bachgan", "spade_boxes"))
    better = [name for name, key, sign in (("mIoU", "miou", 1), ("pixel accuracy", "accuracy", 1), ("toy FID", "fid", -1))
              if sign * (b[key] - s[key]) > 0]
    gap = min(full["miou"] - b["miou"], full["miou"] - s["miou"])
    if len(better) == 3:
        head = "BachGAN is ahead of SPADE on the same boxes on every measure, as in the paper"
    elif not better:
        head = "SPADE on the box layout is ahead of BachGAN on every measure, unlike the paper"
    else:
        worse = [n for n in ("mIoU", "pixel accuracy", "toy FID") if n not in better]
        head = (f"Mixed: BachGAN is ahead of SPADE on the same boxes in {' and '.join(better)}, behind in "
                f"{' and '.join(worse)}; the paper's lead of BachGAN over SPADE on boxes is not reproduced at this budget")
    return (f"{head}. Both boxes-only models stay far below SPADE given the full map (at least "
            f"{100 * gap:.0f} mIoU points), the upper bound, as in the paper. With one run each, differences of a few "
            "points between the two boxes-only models are not evidence either way.")


def write_section(path: Path, text: str) -> None:
    page = path.read_text() if path.is_file() else ""
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END) + r"\n?", re.S)
    page = pattern.sub(lambda _: text, page) if pattern.search(page) else page.rstrip("\n") + "\n\n" + text
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, page)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/reproduce_bachgan_toy", help="runs, reports and logs")
    parser.add_argument("--docs", default="docs", help="folder of reproduction.md (default docs)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--spade-hidden", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS of every step")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs found in --work")
    parser.add_argument("--markdown-only", action="store_true", help="only rewrite the section from WORK/summary.json")
    args = parser.parse_args()
    if args.markdown_only:
        summary = json.loads((REPO / args.work / "summary.json").read_text())
        docs = REPO / args.docs if not Path(args.docs).is_absolute() else Path(args.docs)
        write_section(docs / "reproduction.md", section(summary))
        print(f"rewrote the BachGAN section of {docs / 'reproduction.md'} from the summary")
        return 0

    begin = time.perf_counter()
    work = Path(toy._shown(REPO / args.work if not Path(args.work).is_absolute() else Path(args.work)))
    (REPO / work).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)
    log = REPO / work / "log.txt"
    commands: list[str] = []

    from spadekit.evaluation.toy_segmenter import bundled_toy_segmenter

    segmenter = Path(toy._shown(bundled_toy_segmenter()))
    evaluate_options = ["--segmenter-weights", str(segmenter), "--max-images", str(args.val_images), "--real-reference",
                        "--cache-dir", str(work / "cache"), "--device", args.device, "--no-progress"]
    runs: dict[str, dict] = {}
    cli_runs = {
        "spade_full": ("SPADE", "full label map + instance edges", "toy", []),
        "bachgan": ("BachGAN", "object boxes + 3 retrieved layouts", "bachgan-toy", []),
    }
    for key, (label, what, preset, extra) in cli_runs.items():
        run_dir = work / key
        train = toy._cli("train", "--preset", preset, "--steps", str(args.steps), "--no-progress", "--no-tensorboard",
                         "--device", args.device, *toy._sets(*budget(args), *extra), "--out", str(run_dir))
        commands.append(" ".join(shlex.quote(c) for c in ["spadekit", *train[3:]]))
        timing = REPO / run_dir / "reproduce_timing.json"
        if args.reuse and timing.is_file():
            seconds = json.loads(timing.read_text())["train_seconds"]
        else:
            seconds = toy._run(train, log, env)
            atomic_write_text(timing, json.dumps({"train_seconds": seconds}) + "\n")
        report = work / f"{key}.json"
        evaluate = toy._cli("evaluate", "--model", str(run_dir / "model"), *evaluate_options, "--out", str(report))
        commands.append(" ".join(shlex.quote(c) for c in ["spadekit", *evaluate[3:]]))
        toy._run(evaluate, log, env)
        runs[key] = {"label": label, "input": what, "train_seconds": seconds, "report": json.loads((REPO / report).read_text())}

    # SPADE on box layouts, in this process (its method is registered here only).
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    register_spade_boxes()
    from spadekit.evaluation.evaluate import evaluate

    run_dir = REPO / work / "spade_boxes"
    timing = run_dir / "reproduce_timing.json"
    if args.reuse and timing.is_file():
        seconds = json.loads(timing.read_text())["train_seconds"]
    else:
        print("training SPADE on box layouts (in this process)", flush=True)
        seconds = train_spade_boxes(args, run_dir)
        atomic_write_text(timing, json.dumps({"train_seconds": seconds}) + "\n")
    report = evaluate(run_dir / "model", preset="toy", segmenter_weights=REPO / segmenter, max_images=args.val_images,
                      real_reference=True, cache_dir=REPO / work / "cache", device=args.device, progress=False,
                      out=REPO / work / "spade_boxes.json")
    runs["spade_boxes"] = {"label": "SPADE", "input": "box layout (boxes painted + one \"no object\" class)",
                           "train_seconds": seconds, "report": report}
    for r in runs.values():
        r["parameters_G"] = r["report"]["model"]["parameters"]["generator"]
        m = r["report"]["metrics"]
        print(f"{r['label']} ({r['input']}): mIoU {_pct(m.get('miou'))}, accuracy {_pct(m.get('accuracy'))}, "
              f"toy FID {m['fid']:.2f}", flush=True)

    total = time.perf_counter() - begin
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores" if args.device == "cpu" else args.device,
        "budget": {"steps": args.steps, "batch_size": args.batch_size, "size": args.size, "ngf": args.ngf,
                   "ndf": args.ndf, "spade_hidden": args.spade_hidden, "seed": args.seed},
        "val_images": args.val_images, "threads": args.threads, "runs": runs, "commands": commands,
        "total_minutes": total / 60, "driver_args": " ".join(sys.argv[1:]),
    }
    atomic_write_text(REPO / work / "summary.json", json.dumps(summary, indent=2) + "\n")
    docs = REPO / args.docs if not Path(args.docs).is_absolute() else Path(args.docs)
    write_section(docs / "reproduction.md", section(summary))
    print(f"wrote {docs / 'reproduction.md'} ({total / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
