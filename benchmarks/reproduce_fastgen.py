"""Miniature comparison of the fast generators on toy scenes: CLADE and ASAPNet vs SPADE.

CLADE (Tan et al., TPAMI 2021) replaces SPADE's modulation networks by per-class lookups and
reports quality "on par with SPADE" at a fraction of the cost; ASAPNet (Rott Shaham et al., CVPR
2021) predicts per-tile pixel MLPs from a low-resolution stream and reports comparable quality at
2-18x the speed. This script trains the three generators with the **same budget** (the settings of
``reproduce_toy.py``: steps, batch, size, discriminator, losses, optimiser), evaluates them with the
toy protocol (mIoU, pixel accuracy, toy FID with the bundled toy segmenter) and times their
inference paths side by side (``bench --compare`` on the trained models, at the training size and
at 256x256), then writes a section of ``docs/reproduction.md`` (between the ``fast-generators``
markers) and a JSON summary.

    python benchmarks/reproduce_fastgen.py --threads 1              # defaults: 64x64, 600 steps each
    python benchmarks/reproduce_fastgen.py --steps 30 --val-images 32 --docs /tmp/docs   # a quick look

Training outputs go to ``--work`` (default ``runs/reproduce_fastgen``); ``--reuse`` keeps finished runs.
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
from pathlib import Path

from spadekit.io import atomic_write_text

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reproduce_toy as toy  # noqa: E402  (the shared budget, command runner and sample grid)

REPO = toy.REPO
BEGIN, END = "<!-- fast-generators:begin -->", "<!-- fast-generators:end -->"

GENERATORS = {
    # name: (label, preset, extra options)
    "spade": ("SPADE", "toy", lambda a: ["--set", f"model.spade_hidden={a.spade_hidden}", "--set", "model.norm_G=batch"]),
    "clade": ("CLADE", "clade-toy", lambda a: ["--set", "model.norm_G=batch"]),
    "asapnet": ("ASAPNet", "asapnet-toy", lambda a: [
        "--set", f"asapnet.learned_downsampling={min(8, a.size // 16)}", "--set", f"asapnet.lr_width={a.lr_width}",
        "--set", f"asapnet.lr_max_width={a.lr_max_width}", "--set", f"asapnet.lr_depth={a.lr_depth}",
        "--set", f"asapnet.hr_width={a.hr_width}", "--set", f"asapnet.hr_depth={a.hr_depth}"]),
}


def train_options(args: argparse.Namespace, preset: str) -> list[str]:
    """The miniature reproduction's shared settings (data, size, batch, schedule, no VGG, no EMA) and
    the SPADE family's discriminator, losses and optimiser, for ``preset``."""
    return ["--preset", preset, *toy._train_options(args, args.steps), *toy._spade_family(args)]


def speed(runs: dict, sizes: list[int], threads: int | None, iters: int) -> dict:
    """``bench --compare`` of the trained models at each size (ASAPNet keeps its tile size)."""
    import torch

    from spadekit.bench_compare import compare_models
    from spadekit.inference import model_at_size
    from spadekit.release import load_model

    if threads:
        torch.set_num_threads(threads)
    results = {}
    for side in sizes:
        models = {key: model_at_size(load_model(REPO / r["run"] / "model"), (side, side)) for key, r in runs.items()}
        results[str(side)] = compare_models(models, batch=1, iters=iters, warmup=1, progress=False)
    return results


def markdown(summary: dict, grid_name: str) -> str:
    runs, budget = summary["runs"], summary["budget"]
    rows = []
    for r in runs.values():
        m = r["report"]["metrics"]
        rows.append(f"| {r['label']} | {r['parameters_G'] / 1e6:.2f}M | {toy._fmt(m.get('miou'), True)} | "
                    f"{toy._fmt(m.get('accuracy'), True)} | {toy._fmt(m.get('fid'))} | "
                    f"{r['train_seconds'] / 60:.1f} min ({r['it_per_s']:.2f} it/s) |")
    speed_rows = []
    for side, report in summary["speed"].items():
        for key, r in report["methods"].items():
            speed_rows.append(
                f"| {side}×{side} | {runs[key]['label']} | {r['images_per_second']:.1f} | {r.get('speed_vs_spade', 0):.2f}× | "
                f"{r['flops_per_image'] / 1e9:.2f} | {r['peak_memory_mib']:.0f} |")
    loads = ", ".join(f"{report['load_average_before'][0]:.1f}" for report in summary["speed"].values())
    real = next(iter(runs.values()))["report"].get("real_reference", {})
    return f"""{BEGIN}
## Fast generators: CLADE and ASAPNet vs SPADE on toy scenes

CLADE replaces each SPADE modulation network by a per-class lookup of scale and shift; ASAPNet
predicts, with a low-resolution network, the weights of a small MLP per image tile and runs it on
every pixel. Both papers report quality close to SPADE's at a fraction of its cost. Here the three
generators are trained with one budget of their own ({budget['steps']} steps × {budget['batch_size']} at
{budget['size']}×{budget['size']}, same discriminator, losses and optimiser, seed {budget['seed']}) and measured with the
same toy protocol on {summary['val_images']} validation scenes. Written by `benchmarks/reproduce_fastgen.py`
({summary['date']}, {summary['machine']}).

| generator | G params | mIoU ↑ | pixel acc. ↑ | toy FID ↓ | training wall time |
|---|---|---|---|---|---|
{chr(10).join(rows)}
| *real photos* | | {toy._fmt(real.get('miou'), True)} | {toy._fmt(real.get('accuracy'), True)} | — | |

Inference speed of the trained models (`bench --compare` on the models, batch 1, fp32, each
model's fast path, {summary['speed_threads']} thread(s); the 256×256 row runs the same weights at
the larger size, ASAPNet keeping its {summary['asapnet_tile']}-pixel tiles; load average {loads} while
timing on a shared machine):

| size | generator | img/s | vs SPADE | GFLOP/img | peak MiB |
|---|---|---|---|---|---|
{chr(10).join(speed_rows)}

The wall times of training are dominated by the discriminator and the data, which are the same
for all three; the generators' own cost shows in the inference table. ASAPNet's speed comes from
large tiles: with the {summary['asapnet_tile']}-pixel tiles that the paper's rule gives at {budget['size']} px, its low-res stream runs
on the full-resolution input, so at 256×256 it is hardly faster than SPADE here. The `asapnet-toy`
preset (8-pixel tiles at 128 px, the input reduced 2× by the fixed filter before a 4× learned stream)
is the fast configuration, and the full-size comparison is in the README (`bench --compare`).

Generator settings: SPADE ngf {budget['ngf']} (hidden width {budget['spade_hidden']}, batch norm); CLADE ngf {budget['ngf']}
(batch norm, no ICPE); ASAPNet tile {summary['asapnet_tile']} (learned {summary['asapnet_tile']}×), low-res stream
{budget['lr_width']}→{budget['lr_max_width']} wide with {budget['lr_depth']} blocks, pixel MLP {budget['hr_depth']} layers × {budget['hr_width']}.

Samples (columns: label map, real photo, then per generator its image and the toy segmenter's reading):

![label | real | SPADE | segmented | CLADE | segmented | ASAPNet | segmented]({grid_name})

Commands:

```
{chr(10).join(summary['command'])}
```

{summary['threads_note']}All at once: `python benchmarks/reproduce_fastgen.py {summary['driver_args']}` ({summary['total_minutes']:.1f} minutes).
{END}
"""


def write_section(path: Path, section: str) -> None:
    text = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END) + "\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        marker = "\n## The paper's Table 1"
        text = text.replace(marker, "\n" + section + marker, 1) if marker in text else text + "\n" + section
    atomic_write_text(path, text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", default="runs/reproduce_fastgen")
    parser.add_argument("--docs", default="docs")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--spade-hidden", type=int, default=32)
    parser.add_argument("--lr-width", type=int, default=32, help="ASAPNet low-res stream width (default 32)")
    parser.add_argument("--lr-max-width", type=int, default=128, help="its width at the lowest resolution (default 128)")
    parser.add_argument("--lr-depth", type=int, default=3, help="its blocks (default 3)")
    parser.add_argument("--hr-width", type=int, default=32, help="ASAPNet pixel-MLP width (default 32)")
    parser.add_argument("--hr-depth", type=int, default=4, help="pixel-MLP layers (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-images", type=int, default=500)
    parser.add_argument("--speed-sizes", default="64,256", help="sides to time the trained models at (default 64,256)")
    parser.add_argument("--speed-iters", type=int, default=5)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--rows", type=int, default=6)
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the docs section from WORK/summary.json")
    args = parser.parse_args()

    begin = time.perf_counter()
    work = Path(toy._shown((REPO / args.work) if not Path(args.work).is_absolute() else Path(args.work)))
    docs = (REPO / args.docs) if not Path(args.docs).is_absolute() else Path(args.docs)
    (REPO / work).mkdir(parents=True, exist_ok=True)
    grid_name = "reproduction/fast_generators.png"
    if args.markdown_only:
        summary = json.loads((REPO / work / "summary.json").read_text())
        write_section(docs / "reproduction.md", markdown(summary, grid_name))
        return 0
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    log = REPO / work / "log.txt"
    commands: list[str] = []

    def record(command: list[str]) -> list[str]:
        commands.append(" ".join(shlex.quote(c) for c in ["spadekit", *command[3:]]))
        return command

    from spadekit.evaluation.toy_segmenter import bundled_toy_segmenter

    segmenter_dir = Path(toy._shown(bundled_toy_segmenter()))
    commands.append(f"# toy segmenter: the bundled one ({segmenter_dir})")
    runs: dict[str, dict] = {}
    for key, (label, preset, extra) in GENERATORS.items():
        run_dir = work / key
        command = record(toy._cli("train", *train_options(args, preset), *extra(args), "--out", str(run_dir)))
        timing = REPO / run_dir / "reproduce_timing.json"
        if args.reuse and (REPO / run_dir / "model" / "generator.safetensors").is_file() and timing.is_file():
            train_seconds = json.loads(timing.read_text())["train_seconds"]
        else:
            train_seconds = toy._run(command, log, env)
            atomic_write_text(timing, json.dumps({"train_seconds": train_seconds}) + "\n")
        report_path = work / f"{key}.json"
        command = record(toy._cli("evaluate", "--model", str(run_dir / "model"), "--preset", preset,
                                  "--segmenter-weights", str(segmenter_dir), "--max-images", str(args.val_images),
                                  "--real-reference", "--cache-dir", str(work / "cache"), "--device", args.device,
                                  "--out", str(report_path), "--no-progress"))
        if not (args.reuse and (REPO / report_path).is_file()):
            toy._run(command, log, env)
        report = json.loads((REPO / report_path).read_text())
        params = report["model"]["parameters"]
        runs[key] = {"label": label, "run": str(run_dir), "train_seconds": train_seconds,
                     "it_per_s": args.steps / train_seconds, "parameters_G": params.get("generator"),
                     "parameters_D": params.get("discriminator"), "report": report}
        m = report["metrics"]
        print(f"{label}: mIoU {toy._fmt(m.get('miou'), True)}, accuracy {toy._fmt(m.get('accuracy'), True)}, "
              f"toy FID {toy._fmt(m.get('fid'))}", flush=True)

    sides = [int(s) for s in args.speed_sizes.split(",") if s.strip()]
    speed_report = speed(runs, sides, args.threads, args.speed_iters)
    toy._sample_grid({k: REPO / r["run"] / "model" for k, r in runs.items()}, REPO / segmenter_dir, args.size, args.rows,
                     docs / grid_name)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores" if args.device == "cpu" else args.device,
        "budget": {k: getattr(args, k) for k in ("steps", "batch_size", "size", "ngf", "ndf", "spade_hidden", "seed",
                                                 "lr_width", "lr_max_width", "lr_depth", "hr_width", "hr_depth")},
        "asapnet_tile": args.size // 16,
        "val_images": args.val_images,
        "runs": runs,
        "speed": speed_report,
        "speed_threads": args.threads or "torch's default number of",
        "threads_note": f"Every command ran with `OMP_NUM_THREADS={args.threads}`. " if args.threads else "",
        "command": commands,
        "driver_args": " ".join(sys.argv[1:]),
        "total_minutes": (time.perf_counter() - begin) / 60,
    }
    atomic_write_text(REPO / work / "summary.json", json.dumps(summary, indent=2) + "\n")
    docs.mkdir(parents=True, exist_ok=True)
    write_section(docs / "reproduction.md", markdown(summary, grid_name))
    print(f"wrote {docs / 'reproduction.md'} (section), {docs / grid_name}, {REPO / work / 'summary.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
