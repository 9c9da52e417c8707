"""Make the README's demo picture (``docs/demo.png``) from the bundled toy model.

    python scripts/demo_picture.py --out docs/demo.png

One row per toy layout (the first layouts of ``spadekit demo``: toy ``test`` scenes 0, 1, ...), four
columns: the label map, the model's photo at seed 0, the model's photo in the style of the real toy
photo (its encoder reads the photo's look), and that real toy photo of the layout.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="release model directory or bundled name (default: toy)")
    parser.add_argument("--out", type=Path, default=Path("docs/demo.png"))
    parser.add_argument("--scenes", type=int, default=4, help="rows (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="toy scene seed and latent seed (default 0)")
    args = parser.parse_args()

    from PIL import Image

    from spadekit.data.toy import render_scene, scene_seed
    from spadekit.demo import colorize
    from spadekit.inference import Pipeline
    from spadekit.io import atomic_write

    pipe = Pipeline.from_pretrained(args.model)
    width, height = pipe.size
    sheet = Image.new("RGB", (4 * width, args.scenes * height))
    for i in range(args.scenes):
        scene = render_scene(scene_seed(args.seed, i, "test"), (width, height))
        labels = pipe.labels_from_image(scene.label)
        free = pipe(labels, scene.instance, seed=args.seed)[0]
        styled = pipe(labels, scene.instance, style=scene.image, seed=args.seed)[0]
        cells = [colorize(labels, pipe.palette.colors), free, styled, Image.fromarray(scene.image)]
        for k, cell in enumerate(cells):
            sheet.paste(cell, (k * width, i * height))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out, lambda tmp: sheet.save(tmp, format="PNG", optimize=True))
    print(f"wrote {args.out} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
