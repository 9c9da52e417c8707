"""Sample grids for people: colourised label | synthesized | real, as PNGs and an HTML gallery."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from spadekit.data.palette import default_colors, ids_to_colors
from spadekit.io import atomic_write, atomic_write_text

_PNG = re.compile(r"^step-(\d+)\.png$")


def colorize_labels(label: torch.Tensor, colors: list[list[int]] | np.ndarray | None, num_classes: int) -> torch.Tensor:
    """(N, 1, H, W) integer ids → (N, 3, H, W) float in [-1, 1] using the class colours
    (a default colour map when ``colors`` is None)."""
    table = np.asarray(colors, dtype=np.uint8) if colors else default_colors(num_classes)
    ids = label[:, 0].cpu().numpy()
    rgb = np.stack([ids_to_colors(one, table) for one in ids])  # (N, H, W, 3) uint8
    return torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def sample_grid(label_rgb: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """One row per sample: label | synthesized | real. Inputs (N, 3, H, W) in [-1, 1] → (3, H', W') in [0, 1]."""
    from torchvision.utils import make_grid

    rows = torch.stack([label_rgb.cpu(), fake.detach().float().cpu(), real.cpu()], dim=1).flatten(0, 1)
    return make_grid(rows.clamp(-1, 1), nrow=3, padding=2, normalize=True, value_range=(-1, 1))


def save_png(grid: torch.Tensor, path: Path) -> None:
    """(3, H, W) in [0, 1] → PNG, written atomically."""
    array = (grid.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    atomic_write(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))


def write_gallery(directory: Path, title: str) -> Path:
    """(Re)write ``directory/index.html`` listing every ``step-*.png`` there, newest first."""
    pictures = sorted(
        ((int(m.group(1)), p.name) for p in directory.glob("step-*.png") if (m := _PNG.match(p.name))), reverse=True
    )
    items = "\n".join(
        f'<figure><figcaption>step {step}</figcaption><img src="{html.escape(name)}" alt="step {step}"></figure>'
        for step, name in pictures
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1em}} figure{{display:inline-block;margin:0 1em 1em 0}}
img{{max-width:100%;image-rendering:pixelated}} figcaption{{font-weight:bold}}</style></head>
<body><h1>{html.escape(title)}</h1><p>Each row: label map | synthesized | real. Newest first.</p>
{items}
</body></html>
"""
    target = directory / "index.html"
    atomic_write_text(target, page)
    return target
