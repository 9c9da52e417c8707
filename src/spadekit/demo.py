"""The demo gallery, and the small HTML gallery writer it shares with ``spadekit synthesize``.

:func:`render_demo` draws a few toy-scene layouts (:mod:`spadekit.data.toy`, fixed seeds), runs a
model on them and writes an ``index.html`` with PNGs beside it: one row per layout (label map,
result, the toy photo of that layout), a style-guided row (the first layout in the styles of other
toy photos; VAE models with an encoder) and a multi-sample row (one layout, several seeds; VAE
models). With the bundled ``toy`` model it takes seconds on a CPU.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit.data.palette import ids_to_colors
from spadekit.io import make_temp_file


@dataclass
class Cell:
    """One picture of a gallery: a path relative to the gallery's folder and a caption."""

    src: str
    caption: str = ""


@dataclass
class Row:
    heading: str
    cells: list[Cell] = field(default_factory=list)
    note: str = ""


def colorize(ids: torch.Tensor | np.ndarray, colors: np.ndarray) -> Image.Image:
    """(H, W) label ids → an RGB picture with the palette's colours (don't-care and unknown ids black)."""
    array = ids.cpu().numpy() if isinstance(ids, torch.Tensor) else np.asarray(ids)
    return Image.fromarray(ids_to_colors(array.astype(np.int64), colors))


def save_images(images: dict[Path, Image.Image]) -> None:
    """Write several PNGs all or nothing: each goes to a temporary file first, then all are renamed."""
    temps: list[tuple[Path, Path]] = []
    try:
        for path, image in images.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = make_temp_file(path.parent, prefix=f".{path.name}.")
            temps.append((tmp, path))
            image.save(tmp, format="PNG")
        for tmp, path in temps:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise


def write_gallery(out_dir: Path, title: str, rows: list[Row], intro: str = "", thumb: int = 192) -> Path:
    """Write ``out_dir/index.html`` (atomically): a heading, an intro line and rows of captioned pictures."""
    from spadekit.io import atomic_write_text

    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}"
        "section{margin-bottom:1.5em}.row{display:flex;flex-wrap:wrap;gap:10px}"
        "figure{margin:0;text-align:center;font-size:12px}"
        f"img{{width:{thumb}px;image-rendering:pixelated;border:1px solid #ccc;background:#fff}}"
        "h2{font-size:15px;margin:.6em 0 .3em}p.note{color:#666;font-size:13px;margin:.2em 0}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    if intro:
        parts.append(f'<p class="note">{html.escape(intro)}</p>')
    for row in rows:
        parts.append(f"<section><h2>{html.escape(row.heading)}</h2>")
        if row.note:
            parts.append(f'<p class="note">{html.escape(row.note)}</p>')
        parts.append('<div class="row">')
        for cell in row.cells:
            src = html.escape(cell.src, quote=True)
            parts.append(
                f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(cell.caption, quote=True)}" loading="lazy"></a>'
                f"<figcaption>{html.escape(cell.caption)}</figcaption></figure>"
            )
        parts.append("</div></section>")
    parts.append("</body></html>")
    path = Path(out_dir) / "index.html"
    atomic_write_text(path, "\n".join(parts) + "\n")
    return path


def render_demo(pipeline, out_dir: str | Path, scenes: int = 4, samples: int = 4, seed: int = 0, progress: bool = True,
                refine_steps: int = 0) -> Path:
    """Render the demo gallery into ``out_dir`` (see the module docstring); returns the index.html path.
    With ``refine_steps`` (models with a style encoder) a second style row refines each style
    photo's latent against its toy label map first (:mod:`spadekit.style_refine`).

    ``pipeline`` is a :class:`spadekit.inference.Pipeline` whose model knows the toy classes
    (label ids 0 .. 11); layouts are rendered at the model size from ``scene_seed(seed, i, "test")``.
    """
    from tqdm import tqdm

    from spadekit.data.toy import TOY_CLASSES, render_scene, scene_seed

    out_dir = Path(out_dir)
    size = pipeline.size
    colors = pipeline.palette.colors
    layouts = [render_scene(scene_seed(seed, i, "test"), size) for i in range(scenes + samples)]
    labels = [pipeline.labels_from_image(s.label, source=f"toy scene {i}") for i, s in enumerate(layouts[:scenes])]
    instances = [torch.from_numpy(s.instance.astype(np.int64)) for s in layouts[:scenes]]
    files: dict[Path, Image.Image] = {}
    rows: list[Row] = []
    refine_steps = refine_steps if pipeline.has_encoder else 0
    steps = 1 + int(pipeline.has_encoder) + int(refine_steps > 0) + int(pipeline.uses_latent)
    bar = tqdm(total=steps, desc="demo", unit="row", disable=not progress)

    results = pipeline(labels, instances, seed=seed)
    bar.update()
    for i, (layout, result) in enumerate(zip(layouts, results)):
        files[out_dir / f"scene{i}_label.png"] = colorize(labels[i], colors)
        files[out_dir / f"scene{i}_result.png"] = result
        files[out_dir / f"scene{i}_photo.png"] = Image.fromarray(layout.image)
        rows.append(
            Row(
                f"Layout {i}",
                [
                    Cell(f"scene{i}_label.png", "label map"),
                    Cell(f"scene{i}_result.png", "synthesized"),
                    Cell(f"scene{i}_photo.png", "a toy photo of this layout"),
                ],
            )
        )

    if pipeline.has_encoder:
        styles = [Image.fromarray(s.image) for s in layouts[scenes:]]
        style_row = Row("Style-guided", [Cell("scene0_label.png", "label map")],
                        "Layout 0 in the style of other toy photos (the encoder turns each photo into z).")
        styled = pipeline([labels[0]] * len(styles), [instances[0]] * len(styles), style=styles, seed=seed)
        for k, (style, image) in enumerate(zip(styles, styled)):
            files[out_dir / f"style{k}.png"] = style
            files[out_dir / f"style{k}_result.png"] = image
            style_row.cells += [Cell(f"style{k}.png", f"style {k}"), Cell(f"style{k}_result.png", f"result {k}")]
        rows.append(style_row)
        bar.update()
    if refine_steps > 0:
        refined_row = Row("Style-guided, refined", [Cell("scene0_label.png", "label map")],
                          f"The same styles, each photo's latent refined for {refine_steps} steps so that the model "
                          "redraws that photo from its own label map (spadekit.style_refine).")
        for k, style_scene in enumerate(layouts[scenes:]):
            code = pipeline.refine_style(style_scene.image, style_scene.label, style_scene.instance, refine_steps,
                                         source=f"style {k}")
            image = pipeline(labels[0], instances[0], style=code, seed=seed)[0]
            files[out_dir / f"style{k}_refined.png"] = image
            refined_row.cells += [Cell(f"style{k}.png", f"style {k}"), Cell(f"style{k}_refined.png", f"refined {k}")]
        rows.append(refined_row)
        bar.update()
    if pipeline.uses_latent:
        images = pipeline(labels[0], instances[0], seed=seed, num_samples=samples)
        row = Row("Multiple samples", [Cell("scene0_label.png", "label map")],
                  f"Layout 0 with {samples} random latents (seeds {seed}..{seed + samples - 1}).")
        for k, image in enumerate(images):
            files[out_dir / f"sample{k}.png"] = image
            row.cells.append(Cell(f"sample{k}.png", f"seed {seed + k}"))
        rows.append(row)
        bar.update()
    bar.close()
    save_images(files)
    m = pipeline.config.model
    classes = ", ".join(TOY_CLASSES)
    intro = (
        f"Model: {m.generator} generator, {size[0]}x{size[1]}, {m.label_nc} classes"
        f"{', VAE' if m.use_vae else ''}{', style encoder' if pipeline.has_encoder else ''}. "
        f"Toy classes: {classes}."
    )
    return write_gallery(out_dir, "spadekit demo", rows, intro)
