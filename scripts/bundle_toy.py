"""Turn a finished toy training run into the bundled model ``src/spadekit/bundled/toy`` and its card.

    spadekit train --preset toy --out runs/toy                 # see the card for time and hardware
    spadekit evaluate --model runs/toy/model --preset toy --max-images 200 --real-reference --out runs/toy/eval.json
    python benchmarks/style_fidelity.py --model runs/toy/model --out runs/toy/style.json
    python benchmarks/toy_diversity.py --model runs/toy/model --out runs/toy/diversity.json
    python scripts/bundle_toy.py runs/toy --eval runs/toy/eval.json --style runs/toy/style.json \\
        --diversity runs/toy/diversity.json --notes scripts/toy_model_notes.md

With ``--encoder-run RUN2`` the style encoder comes from a later run that trained it alone against
RUN's frozen generator (``spadekit train --init-from RUN/model --set "train.frozen=[generator,discriminator]"``);
the script checks that RUN2's generator is RUN's, bit for bit, and the card reports both phases.

The generator and encoder are stored in float16 (halving the package size; the networks still run
in float32 after loading), the discriminator is left out (it only matters for further training:
fine-tune with ``--init-from toy`` and a fresh discriminator). The model card records the command,
steps, wall time, hardware, the evaluation against real toy photos and the issue's goals, and the
regression floor that ``tests/test_bundled_toy.py`` holds the bundled model to (measured here on
the bundled fp16 weights, on a small fixed set of scenes).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from pathlib import Path

from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "spadekit" / "bundled" / "toy"

# The regression set of tests/test_bundled_toy.py: small enough for seconds on a CPU.
FLOOR_SCENES = 16
FLOOR_PAIRS = 20
FLOOR_LAYOUTS, FLOOR_SAMPLES = 4, 3
FLOOR_MARGIN = {"miou": 0.02, "accuracy": 0.01, "style_r_sky": 0.05, "style_r_grass": 0.05,
                "style_r_sky_refined": 0.05, "style_r_grass_refined": 0.05, "diversity": 0.1}
"""Floor = value on the regression set − margin (room for other CPUs' arithmetic, not for a worse model)."""

GOALS = {"fid": 0.14, "miou": 0.76, "accuracy": 0.92, "style_r": 0.8, "diversity": (0.5, 2.0), "megabytes": 20.0,
         "seconds": 0.5}


def training_summary(run: Path) -> dict:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    # Wall time = sum of the intervals between consecutive log records (resumed runs restart the clock).
    seconds = 0.0
    for previous, current in zip(records, records[1:]):
        gap = current["time"] - previous["time"]
        if 0 < gap < 3600 and current["step"] > previous["step"]:
            seconds += gap
    return {"steps": records[-1]["step"], "hours": seconds / 3600, "last": records[-1]}


def loss_terms(loss: dict) -> list[str]:
    """The objective of a run's ``loss`` config section in words, one entry per term with weight."""
    terms = []
    if loss.get("lambda_gan", 1.0):
        terms.append("hinge GAN" + (f" ×{loss['lambda_gan']:g}" if loss.get("lambda_gan", 1.0) != 1 else ""))
    if loss.get("feature_matching", True) and loss.get("lambda_feat"):
        terms.append(f"feature matching ×{loss['lambda_feat']:g}")
    if loss.get("lambda_l1"):
        terms.append(f"L1 on {loss['l1_pool']}×{loss['l1_pool']}-pooled images ×{loss['lambda_l1']:g}")
    if loss.get("lambda_region_colour"):
        terms.append(f"L1 on each region's mean colour ×{loss['lambda_region_colour']:g}")
    if loss.get("lambda_prior_gan"):
        terms.append(f"hinge GAN on prior-latent images ×{loss['lambda_prior_gan']:g}")
    if loss.get("lambda_mode_seeking"):
        terms.append(f"mode seeking ×{loss['lambda_mode_seeking']:g}")
    return terms + [f"KL ×{loss['lambda_kld']:g}"]


def logged_losses(summary: dict) -> dict[str, float]:
    """The loss terms of a run's last log record."""
    return {k: v for k, v in summary["last"].items() if k.startswith(("G_", "D_", "KLD"))}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def regression_set(model_dir: Path) -> dict:
    """The numbers tests/test_bundled_toy.py recomputes: mIoU / accuracy on the first val scenes,
    style r on the first pairs, model feature diversity on the first layouts."""
    from spadekit.evaluation.evaluate import evaluate
    from spadekit.evaluation.style_fidelity import style_fidelity, toy_pairs
    from spadekit.evaluation.toy_diversity import toy_diversity
    from spadekit.evaluation.toy_segmenter import load_toy_segmenter
    from spadekit.inference import Pipeline
    from spadekit.style_refine import DEFAULT_REFINE_STEPS

    report = evaluate(str(model_dir), preset="toy", metrics="miou,accuracy", max_images=FLOOR_SCENES, progress=False)
    pipe = Pipeline.from_pretrained(str(model_dir))
    pairs = toy_pairs(FLOOR_PAIRS, pipe.size[0])
    style = style_fidelity(pipe, pairs, pipe.class_names)["classes"]
    refined = style_fidelity(pipe, pairs, pipe.class_names, refine_steps=DEFAULT_REFINE_STEPS)["classes"]
    diversity = toy_diversity(pipe, load_toy_segmenter(), FLOOR_LAYOUTS, FLOOR_SAMPLES)
    return {
        "miou": report["metrics"]["miou"],
        "accuracy": report["metrics"]["accuracy"],
        "style_r_sky": style["sky"]["r"],
        "style_r_grass": style["grass"]["r"],
        "style_r_sky_refined": refined["sky"]["r"],
        "style_r_grass_refined": refined["grass"]["r"],
        "diversity": diversity["model"],
    }


def inference_seconds(model_dir: Path, threads: int, repeats: int = 20) -> tuple[float, float]:
    """(median, fastest) wall time of one 128² image through Pipeline (fast path) on ``threads`` threads."""
    import torch

    from spadekit.data.toy import render_scene
    from spadekit.inference import Pipeline

    torch.set_num_threads(threads)
    pipe = Pipeline.from_pretrained(str(model_dir))
    scene = render_scene(0, pipe.size[0])
    pipe(scene.label, scene.instance, seed=0)
    times = []
    for k in range(repeats):
        begin = time.perf_counter()
        pipe(scene.label, scene.instance, seed=k)
        times.append(time.perf_counter() - begin)
    torch.set_num_threads(1)
    return statistics.median(times), min(times)


def real_fid_floors(count: int = 200) -> tuple[float, float]:
    """What real toy photos score on the toy FID at ``count`` images: (other layouts, same layouts).

    Other layouts: the first ``count`` real val photos against as many real test photos. Same
    layouts: ``count`` layouts each drawn twice with different style seeds (``render_scene``'s
    ``style_seed``), which is how a perfect model's results relate to the real val photos they are
    compared with: the same label maps, another look. The second is the floor a model can approach.
    """
    import torch

    from spadekit.data.toy import render_scene, scene_seed
    from spadekit.evaluation.fid import compute_statistics, frechet_distance
    from spadekit.evaluation.toy_segmenter import ToyFeatures, load_toy_segmenter, render_toy_set, to_unit_range

    features = ToyFeatures(load_toy_segmenter())

    def statistics_of(images: torch.Tensor):
        return compute_statistics(features, (to_unit_range(images[start : start + 50]) for start in range(0, count, 50)))

    def distance(a, b) -> float:
        return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)

    val, test = (statistics_of(render_toy_set(count, 128, split)[0]) for split in ("val", "test"))
    looks = []
    for offset in (10_000, 20_000):
        scenes = [render_scene(scene_seed(0, i, "val"), 128, style_seed=offset + i) for i in range(count)]
        looks.append(statistics_of(torch.stack([torch.from_numpy(sc.image).permute(2, 0, 1) for sc in scenes])))
    return distance(val, test), distance(*looks)


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="run directory of `spadekit train --preset toy`")
    parser.add_argument("--eval", type=Path, required=True, help="report JSON of `spadekit evaluate` on this model")
    parser.add_argument("--style", type=Path, required=True, help="JSON of benchmarks/style_fidelity.py on this model")
    parser.add_argument("--diversity", type=Path, required=True, help="JSON of benchmarks/toy_diversity.py on this model")
    parser.add_argument("--encoder-run", type=Path, default=None,
                        help="run directory of a later encoder-only phase (generator frozen); its encoder is bundled")
    parser.add_argument("--notes", type=Path, help="markdown inserted into the card (the recipe and why)")
    parser.add_argument("--command", default="spadekit train --preset toy --out runs/toy",
                        help="training command for the card (a command, or a sentence with its own markdown "
                             "when it contains a backtick, e.g. one that points to the commands in --notes)")
    parser.add_argument(
        "--eval-command",
        default="spadekit evaluate --model toy --preset toy --max-images 200 --real-reference --out eval.json",
        help="evaluation command for the card",
    )
    parser.add_argument("--steps-note", default=None,
                        help="the card's steps entry, for a model whose history is more than RUN (and --encoder-run); "
                        "the notes then tell the phases")
    parser.add_argument("--earlier-hours", type=float, default=0.0,
                        help="wall time of the runs before RUN that led to its starting checkpoint (added to the card's)")
    parser.add_argument("--hardware", default=None, help="hardware line for the card (default: this CPU, shared, 1 thread)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    model_dir = args.run / "model"
    staging = TARGET.with_name(".toy.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    release = json.loads((model_dir / "config.json").read_text())
    encoder_dir = model_dir
    encoder_phase = None
    if args.encoder_run is not None:
        encoder_dir = args.encoder_run / "model"
        ours, theirs = load_file(str(model_dir / "generator.safetensors")), load_file(str(encoder_dir / "generator.safetensors"))
        if ours.keys() != theirs.keys() or any(not ours[k].half().equal(theirs[k].half()) for k in ours):
            raise SystemExit(f"{encoder_dir}: its generator is not the one of {model_dir}; was the generator frozen?")
        encoder_phase = training_summary(args.encoder_run)
        encoder_config = json.loads((encoder_dir / "config.json").read_text())["config"]
        # The encoder run's architecture (the generator's part of it is RUN's, checked above; the encoder may differ).
        release["config"]["model"] = encoder_config["model"]
        release["provenance"]["encoder"] = {"phase": "trained alone against the frozen generator",
                                            "steps": encoder_phase["steps"],
                                            "frozen": encoder_config["train"]["frozen"]}
    (staging / "config.json").write_text(json.dumps(release, indent=1) + "\n")
    for part, directory in (("generator", model_dir), ("encoder", encoder_dir)):
        source = directory / f"{part}.safetensors"
        if source.exists():
            state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(source)).items()}
            save_file(state, str(staging / f"{part}.safetensors"), metadata={"format": "pt", "dtype": "float16"})
    megabytes = sum(p.stat().st_size for p in staging.iterdir()) / 1e6

    summary = training_summary(args.run)
    evaluation = json.loads(args.eval.read_text())
    style = json.loads(args.style.read_text())
    diversity = json.loads(args.diversity.read_text())
    config = json.loads((model_dir / "config.json").read_text())["config"]
    m, t, loss = release["config"]["model"], config["train"], config["loss"]
    print("measuring the fp16 weights: regression set, inference time, real FID floor ...", flush=True)
    floor_values = regression_set(staging)
    timings = {threads: inference_seconds(staging, threads) for threads in (1, 2)}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    seconds = min(median for median, _ in timings.values())
    fid_other_layouts, fid_same_layouts = real_fid_floors()

    metrics = evaluation["metrics"]
    real = evaluation.get("real_reference", {})
    sky, grass = style["with_style"]["classes"]["sky"]["r"], style["with_style"]["classes"]["grass"]["r"]
    sky0, grass0 = style["without_style"]["classes"]["sky"]["r"], style["without_style"]["classes"]["grass"]["r"]
    refined = style.get("with_style_refined")
    if refined is None:
        raise SystemExit(f"{args.style}: no refined results; run benchmarks/style_fidelity.py with --refine-steps > 0")
    refine_steps = style["refine_steps"]
    sky_refined, grass_refined = refined["classes"]["sky"]["r"], refined["classes"]["grass"]["r"]
    real_photos = style.get("real_photos", {}).get("classes", {})

    def real_r(name: str) -> str:
        r = real_photos.get(name, {}).get("r")
        return f"{r:.3f} (each layout in its style photo's look)" if r is not None else ""
    ratio = diversity["ratio"]
    steps_per_epoch = None
    decay = f"lr constant for {t['epochs']} epochs" + (
        f", then linear decay to 0 over {t['epochs_decay']}" if t["epochs_decay"] else "")
    if config["data"].get("toy_scenes"):
        steps_per_epoch = config["data"]["toy_scenes"] // t["batch_size"]
        decay += f" ({steps_per_epoch} steps per epoch)"
    steps = (f"{summary['steps']} generator updates, batch {t['batch_size']}, {config['data'].get('toy_scenes')} "
             f"training scenes; {decay}; EMA {t['ema_decay']} with warm-up")
    hours = summary["hours"]
    losses = " + ".join(loss_terms(loss)) + " (no VGG: its ImageNet weights are not bundled)"
    last = logged_losses(summary)
    if encoder_phase is not None:
        frozen = " and ".join(encoder_config["train"]["frozen"])
        steps += (f"; then {encoder_phase['steps']} updates of the style encoder alone, {frozen} "
                  f"frozen (`train.frozen`), final lr {encoder_config['train'].get('lr_G') or encoder_config['train']['lr'] / 2:g}")
        hours += encoder_phase["hours"]
        losses += "; encoder phase: " + " + ".join(loss_terms(encoder_config["loss"]))
        last = {**{f"{k} (generator phase)": v for k, v in last.items()},
                **{f"{k} (encoder phase)": v for k, v in logged_losses(encoder_phase).items()}}
    if args.steps_note:
        steps = args.steps_note
    hours += args.earlier_hours
    hardware = args.hardware or f"{cpu_name()}, 2 cores shared with other jobs; fp32, one thread"
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
        f"norm {m['norm_G']}, instance edges, VAE (z {m['z_dim']}, encoder norm {m['norm_E']}"
        f"{'; the latent enters every SPADE layer, `model.latent_spade`' if m.get('latent_spade') else ''}); "
        f"discriminator ndf {m['ndf']}, {m['num_D']} scales |",
        f"| training command | {args.command} |" if "`" in args.command
        else f"| training command | `{args.command}` (the `toy` preset holds every option below) |",
        f"| steps | {steps} |",
        f"| learning rates | G {t['lr'] / 2:g}, D {t['lr'] * 2:g} (TTUR), Adam betas (0, 0.9) |",
        f"| wall time | {hours:.2f} h |",
        f"| hardware | {hardware} |",
        f"| losses | {losses} |",
        f"| storage | generator and encoder in float16 safetensors (loaded into float32), {megabytes:.1f} MB; no discriminator |",
        "| last logged losses | " + ", ".join(f"{k} {v:.3f}" for k, v in last.items()) + " |",
        "",
        "## Evaluation against real toy photos, and the goals of issue 13",
        "",
        "| measure | this model | real toy photos | goal | |",
        "|---|---|---|---|---|",
        f"| toy FID (200 val scenes) | {metrics['fid']:.4f} | {fid_same_layouts:.4f} (the same 200 layouts in other looks; {fid_other_layouts:.4f} with other layouts) | ≤ {GOALS['fid']} | "
        f"{met(metrics['fid'] <= GOALS['fid'])} |",
        f"| miou | {metrics['miou']:.4f} | {real.get('miou', float('nan')):.4f} | ≥ {GOALS['miou']} | {met(metrics['miou'] >= GOALS['miou'])} |",
        f"| accuracy | {metrics['accuracy']:.4f} | {real.get('accuracy', float('nan')):.4f} | ≥ {GOALS['accuracy']} | "
        f"{met(metrics['accuracy'] >= GOALS['accuracy'])} |",
        f"| mean_accuracy | {metrics['mean_accuracy']:.4f} | {real.get('mean_accuracy', float('nan')):.4f} | | |",
        f"| style r, sky ({style['pairs']} pairs) | {sky:.3f} (no style: {sky0:.3f}) | {real_r('sky')} | ≥ {GOALS['style_r']} | "
        f"{met(sky is not None and sky >= GOALS['style_r'])} |",
        f"| style r, grass ({style['pairs']} pairs) | {grass:.3f} (no style: {grass0:.3f}) | {real_r('grass')} | ≥ {GOALS['style_r']} | "
        f"{met(grass is not None and grass >= GOALS['style_r'])} |",
        f"| style r, sky, refined ({refine_steps} steps) | {sky_refined:.3f} | {real_r('sky')} | ≥ {GOALS['style_r']} | "
        f"{met(sky_refined is not None and sky_refined >= GOALS['style_r'])} |",
        f"| style r, grass, refined ({refine_steps} steps) | {grass_refined:.3f} | {real_r('grass')} | ≥ {GOALS['style_r']} | "
        f"{met(grass_refined is not None and grass_refined >= GOALS['style_r'])} |",
        f"| feature diversity ({diversity['layouts']} layouts × {diversity['samples']}) | {diversity['model']:.4f} | "
        f"{diversity['real']:.4f} (style seeds) | ratio in 0.5..2 | ratio {ratio:.2f}, {met(0.5 <= ratio <= 2.0)} |",
        f"| bundled weights | {megabytes:.1f} MB | | ≤ {GOALS['megabytes']:g} MB | {met(megabytes <= GOALS['megabytes'])} |",
        f"| one 128² image through `Pipeline` | " + "; ".join(
            f"{threads} thread{'s' if threads > 1 else ''}: {median:.3f} s (fastest {fastest:.3f})"
            for threads, (median, fastest) in timings.items())
        + f" (median of 20; CPU shared, load average {load:.1f}) | | ≤ {GOALS['seconds']} s | {met(seconds <= GOALS['seconds'])} |",
        "",
        f"Measured with `{args.eval_command}` (the bundled toy segmenter; mIoU and accuracy as fractions;",
        "the toy FID uses the toy segmenter's features and only ranks toy models; at 200 images it has a floor:",
        "the real column is what real toy photos of the same 200 layouts, drawn with other style seeds, score against",
        "each other, and in brackets two sets of real photos of different layouts), `python benchmarks/style_fidelity.py`",
        "and `python benchmarks/toy_diversity.py`. Per-class IoU:",
        "",
        "| class | IoU |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v:.3f} |" if isinstance(v, (int, float)) else f"| {k} | - |"
              for k, v in evaluation.get("per_class_iou", {}).items()]
    from spadekit.evaluation.style_fidelity import format_table

    lines += [
        "",
        "## Style fidelity (`benchmarks/style_fidelity.py`)",
        "",
        f"Toy val scene i drawn in the style of toy test scene i, {style['pairs']} pairs: Pearson r between the",
        "style photo's and the result's mean colour of each class (per RGB channel, averaged). `r no style`",
        "draws the same layouts without the style photo (a random latent), the control; `r real` is what real",
        "toy photos score (each layout drawn in its style photo's look, one style seed for both): the ceiling.",
        "",
        "The style encoder alone (one pass; `Pipeline(labels, style=photo)`):",
        "",
        "```",
        format_table(style["with_style"], style["without_style"], style.get("real_photos")),
        "```",
        "",
        f"The encoder's latent refined for {refine_steps} steps so that the generator redraws the style photo from",
        "the style scene's own label map (`Pipeline(labels, style=photo, style_labels=its_labels,",
        f"refine_steps={refine_steps})`, `spadekit synthesize --refine-steps`; `spadekit.style_refine`). The layout being",
        "drawn is never looked at, and the generator's weights do not change:",
        "",
        "```",
        format_table(refined, style["without_style"], style.get("real_photos")),
        "```",
        "",
        "## Regression floor",
        "",
        "`tests/test_bundled_toy.py` recomputes these on the bundled weights (seconds on a CPU) and fails",
        "below the floor: mIoU and accuracy of `spadekit evaluate --preset toy` on the first",
        f"{FLOOR_SCENES} val scenes, style r on the first {FLOOR_PAIRS} pairs of the style benchmark (with the encoder",
        f"alone and refined), and the model's feature diversity on {FLOOR_LAYOUTS} layouts × {FLOOR_SAMPLES} seeds.",
        "",
        "| check | value | floor |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v:.4f} | {v - FLOOR_MARGIN[k]:.4f} |" for k, v in floor_values.items()]
    if args.notes:
        lines += ["", args.notes.read_text().strip()]
    (staging / "MODEL_CARD.md").write_text("\n".join(lines) + "\n")

    shutil.rmtree(TARGET, ignore_errors=True)
    staging.rename(TARGET)
    for file in TARGET.iterdir():
        file.chmod(0o644)
    print(f"wrote {TARGET} ({megabytes:.1f} MB)")


if __name__ == "__main__":
    main()
