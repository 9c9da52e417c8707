"""Take the studio screenshot for the docs: serve a model, open the page in headless Chromium, load an
example scene, wait for the synthesized image, and save the page.

    python benchmarks/studio_screenshot.py --model toy --out docs/studio.png
    python benchmarks/studio_screenshot.py --model runs/bachgan/model --mode boxes --out docs/studio_boxes.png
    python benchmarks/studio_screenshot.py --model runs/palette-toy/model --mode palette --out docs/studio_palette.png

``--mode`` picks the page's mode (default: the model's first, see ``modes`` in ``GET /api/model``):
``layout`` paints (an example scene), ``boxes`` shows the starting boxes with one selected and the
retrieved layouts, ``palette`` samples a palette (the page's random numbers are seeded, so the same
model gives the same picture).

Needs Chromium (Debian: ``apt-get install chromium``) and Playwright for Python.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
from pathlib import Path



def take_screenshot(
    model: str,
    out: Path,
    chromium: str = "/usr/bin/chromium",
    width: int = 1360,
    height: int = 820,
    example: int = 0,
    seed: int = 1,
    device: str = "cpu",
    name: str | None = None,
    mode: str | None = None,
) -> Path:
    from playwright.sync_api import sync_playwright

    from spadekit.errors import ConfigError
    from spadekit.io import atomic_write
    from spadekit.studio import background_server, create_app, open_studio_model
    from spadekit.studio.server import CHROMIUM_ARGS

    pipeline, palette = open_studio_model(model, device=device)
    app = create_app(pipeline, model_name=name or (Path(model).name if Path(model).exists() else model), palette_pipeline=palette)
    settled = "window.spadekitStudio && window.spadekitStudio.results >= {n} && window.spadekitStudio.upToDate"
    with background_server(app) as url, sync_playwright() as pw:
        with urllib.request.urlopen(f"{url}/api/model") as answer:
            modes = json.load(answer)["modes"]
        mode = mode or modes[0]
        if mode not in modes:
            raise ConfigError(f"--mode {mode}: this model's modes are {', '.join(modes)}")
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            # bypass_csp: Playwright's wait_for_function evaluates strings, which the page's CSP forbids.
            context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=1, bypass_csp=True)
            # Seeded random numbers: a sampled palette or a new seed is the same on every run.
            context.add_init_script("Math.random = (() => { let s = 42; return () => (s = (s * 16807) % 2147483647) / 2147483647; })();")
            page = context.new_page()
            page.goto(url)
            if mode == "boxes":
                _boxes(page)
            elif mode == "palette":
                _palette(page)
            else:
                page.wait_for_function(settled.format(n=1), timeout=120_000)
                _layout(page, pipeline, example, seed, settled)
            png = page.screenshot(full_page=False)
        finally:
            browser.close()
    atomic_write(out, lambda tmp: tmp.write_bytes(png))
    return out


def _layout(page, pipeline, example: int, seed: int, settled: str) -> None:
    if example and page.locator("#examples option").count() > example:
        page.select_option("#examples", index=example)
        page.click("#load-example")
    if pipeline.config.model.use_vae:
        page.fill("#seed", str(seed))
        page.dispatch_event("#seed", "change")
        page.locator("#seed").blur()
    results = page.evaluate("window.spadekitStudio.results")
    page.wait_for_function(settled.format(n=results), timeout=120_000)
    # Show the brush outline over the canvas, as while painting.
    box = page.locator("#labels").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.62, box["y"] + box["height"] * 0.7)


def _boxes(page) -> None:
    boxes_settled = "window.spadekitBoxes && window.spadekitBoxes.results >= {n} && window.spadekitBoxes.upToDate"
    page.wait_for_function(boxes_settled.format(n=1), timeout=120_000)
    # Select the third box (handles show) by clicking its middle; the photo does not change.
    boxes = page.evaluate("window.spadekitBoxes.boxes()")
    width, height = page.evaluate("window.spadekitStudio.size")
    cls, x0, y0, x1, y1 = boxes[min(2, len(boxes) - 1)]
    frame = page.locator("#boxes").bounding_box()
    page.mouse.click(frame["x"] + frame["width"] * (x0 + x1) / 2 / width, frame["y"] + frame["height"] * (y0 + y1) / 2 / height)
    page.wait_for_function(boxes_settled.format(n=1), timeout=120_000)
    page.wait_for_function("[...document.querySelectorAll('.thumb img')].every((i) => i.complete)", timeout=30_000)


def _palette(page) -> None:
    page.wait_for_function(
        "window.spadekitPalette && window.spadekitPalette.results >= 1 && window.spadekitPalette.upToDate "
        "&& window.spadekitStudio.upToDate && window.spadekitStudio.results >= 1",
        timeout=120_000,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="toy", help="release model directory or bundled model name (default: toy)")
    parser.add_argument("--out", default="docs/studio.png", help="PNG to write (default docs/studio.png)")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="Chromium executable (default /usr/bin/chromium)")
    parser.add_argument("--width", type=int, default=1360, help="browser window width in CSS pixels (default 1360)")
    parser.add_argument("--height", type=int, default=820, help="browser window height in CSS pixels (default 820)")
    parser.add_argument("--example", type=int, default=0, help="which example scene to show (default 0, the first)")
    parser.add_argument("--seed", type=int, default=1, help="style seed for models with a VAE (default 1)")
    parser.add_argument("--device", default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--name", default=None, help="model name shown on the page (default: the --model value)")
    parser.add_argument("--mode", choices=("layout", "boxes", "palette"), default=None,
                        help="the page's mode (default: the model's first: boxes for box models, palette for palette models)")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"error: {args.chromium}: Chromium not found (Debian: apt-get install chromium)", file=sys.stderr)
        return 2
    from spadekit.errors import SpadekitError

    try:
        out = take_screenshot(args.model, Path(args.out), args.chromium, args.width, args.height, args.example, args.seed, args.device, args.name,
                              args.mode)
    except SpadekitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
