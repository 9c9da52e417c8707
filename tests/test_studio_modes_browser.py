"""End to end: the studio's boxes and palette modes in real headless Chromium.

Boxes (a tiny BachGAN-style model): draw a box, move it, resize it, and see the photo change; pick
another retrieved layout. Palette (a tiny palette model + the bundled toy image model): move a
slider, sample a palette, see the layout and its photo, then paint on the layout with the brush.
What the page shows is checked against the Pipeline's own output for the same inputs.

Skipped only where Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package) or Playwright is
not installed.
"""

from __future__ import annotations

import io
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from spadekit.inference import Pipeline
from spadekit.methods.palette.pipeline import PalettePipeline
from spadekit.studio import background_server, create_app, open_studio_model

from browser_page import browser_page, needs_chromium
from studio_models import box_model, palette_model


pytestmark = needs_chromium


@pytest.fixture(scope="module")
def box_dir(tmp_path_factory) -> Path:
    return box_model(tmp_path_factory.mktemp("studio-boxes-e2e") / "model")


@pytest.fixture(scope="module")
def palette_dir(tmp_path_factory) -> Path:
    return palette_model(tmp_path_factory.mktemp("studio-palette-e2e") / "run")


@contextmanager
def open_page(model_dir: Path):
    """The studio for ``model_dir`` in a fresh headless Chromium page."""
    pipeline, palette = open_studio_model(model_dir)
    with background_server(create_app(pipeline, model_name="e2e", palette_pipeline=palette)) as url:
        with browser_page(url, viewport={"width": 1280, "height": 900}) as page:
            yield page


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(float)


# ------------------------------------------------------------------------------ boxes

BOXES = "window.spadekitBoxes"


def boxes_settled(page, results_at_least: int) -> None:
    try:
        page.wait_for_function(f"{BOXES} && {BOXES}.results >= {results_at_least} && {BOXES}.upToDate", timeout=60_000)
    except PlaywrightTimeout:
        state = page.evaluate(
            f"({{mode: window.spadekitModes && window.spadekitModes.current, boxes: {BOXES} && "
            f"{{requests: {BOXES}.requests, results: {BOXES}.results, errors: {BOXES}.errors, upToDate: {BOXES}.upToDate}}, "
            "status: document.getElementById('status').textContent}})"
        )
        raise AssertionError(f"the boxes mode did not settle with {results_at_least} result(s): {state}") from None


def boxes_shown(page) -> bytes:
    return bytes(page.evaluate(f"{BOXES}.resultPng()"))


def drag(page, frame: dict, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
    """Drag the mouse between two points given as fractions of ``frame``."""
    page.mouse.move(frame["x"] + frame["width"] * start[0], frame["y"] + frame["height"] * start[1])
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * end[0], frame["y"] + frame["height"] * end[1], steps=steps)
    page.mouse.up()


def expected_boxes_png(pipeline: Pipeline, boxes: list[list[int]], choose: list[int] | None = None) -> bytes:
    document = [{"class": c, "box": [x0, y0, x1, y1]} for c, x0, y0, x1, y1 in boxes]
    return png_of(pipeline.from_boxes(document, choose=choose, seed=1).images[0])


def test_boxes_mode_draw_move_resize_and_pick_a_layout(box_dir):
    reference = Pipeline.from_pretrained(box_dir)
    with open_page(box_dir) as page:
        boxes_settled(page, 1)
        # The model's modes, the boxes mode first; only the box classes are offered.
        assert page.locator("#modes button").all_inner_texts() == ["Boxes", "Paint"]
        assert page.locator("#modes button.active").inner_text() == "Boxes"
        assert page.is_visible("#boxes") and not page.is_visible("#labels")
        assert [li.get_attribute("data-id") for li in page.locator("#classes li:visible").all()] == ["7", "9", "10", "11"]
        start = page.evaluate(f"{BOXES}.boxes()")
        assert len(start) == 4
        assert boxes_shown(page) == expected_boxes_png(reference, start)
        frame = page.locator("#boxes").bounding_box()

        # Draw a person box in the empty top-right corner.
        page.click("#classes li[data-id='11']")
        before, results = boxes_shown(page), page.evaluate(f"{BOXES}.results")
        drag(page, frame, (0.89, 0.03), (0.98, 0.3))
        boxes_settled(page, results + 1)
        drawn = page.evaluate(f"{BOXES}.boxes()")
        assert len(drawn) == 5 and drawn[:4] == start
        cls, x0, y0, x1, y1 = drawn[4]
        assert cls == 11 and abs(x0 - 57) <= 1 and abs(y0 - 2) <= 1 and abs(x1 - 63) <= 1 and abs(y1 - 19) <= 1
        drawn_png = boxes_shown(page)
        assert np.abs(pixels(drawn_png) - pixels(before)).mean() > 1, "a new box should change the photo"
        assert drawn_png == expected_boxes_png(reference, drawn)

        # Move it: same size, 19 model pixels to the left.
        results = page.evaluate(f"{BOXES}.results")
        drag(page, frame, ((x0 + x1) / 2 / 64, (y0 + y1) / 2 / 64), ((x0 + x1) / 2 / 64 - 0.3, (y0 + y1) / 2 / 64))
        boxes_settled(page, results + 1)
        moved = page.evaluate(f"{BOXES}.boxes()")[4]
        assert moved[0] == 11 and (moved[3] - moved[1], moved[4] - moved[2]) == (x1 - x0, y1 - y0)
        assert abs(moved[1] - (x0 - 19)) <= 1 and moved[2] == y0
        moved_png = boxes_shown(page)
        assert np.abs(pixels(moved_png) - pixels(drawn_png)).mean() > 1, "moving a box should change the photo"

        # Resize it by its bottom-right corner.
        results = page.evaluate(f"{BOXES}.results")
        drag(page, frame, (moved[3] / 64, moved[4] / 64), (moved[3] / 64 + 0.1, moved[4] / 64 + 0.2))
        boxes_settled(page, results + 1)
        resized = page.evaluate(f"{BOXES}.boxes()")
        _, rx0, ry0, rx1, ry1 = resized[4]
        assert (rx0, ry0) == (moved[1], moved[2]) and abs(rx1 - (moved[3] + 6)) <= 1 and abs(ry1 - (moved[4] + 13)) <= 1
        resized_png = boxes_shown(page)
        assert np.abs(pixels(resized_png) - pixels(moved_png)).mean() > 1, "resizing a box should change the photo"
        assert resized_png == expected_boxes_png(reference, resized)

        # The panel lists the retrieved layouts; pick a candidate that is not used: it replaces the last.
        used = page.evaluate(f"{BOXES}.used()")
        assert page.locator("#used-layouts .thumb").count() == 3
        assert page.locator("#candidate-layouts .thumb").count() == 8 and page.locator("#candidate-layouts .thumb.in-use").count() == 3
        assert page.evaluate("[...document.querySelectorAll('.thumb img')].every((i) => i.complete && i.naturalWidth === 64)")
        other = page.locator("#candidate-layouts .thumb:not(.in-use)").first
        picked = int(other.get_attribute("data-index"))
        results = page.evaluate(f"{BOXES}.results")
        other.click()
        boxes_settled(page, results + 1)
        assert page.evaluate(f"{BOXES}.used()") == used[:2] + [picked] == page.evaluate(f"{BOXES}.chosen")
        chosen_png = boxes_shown(page)
        assert chosen_png != resized_png
        assert chosen_png == expected_boxes_png(reference, resized, choose=used[:2] + [picked])
        # Select the first used layout, then a candidate: that one is replaced instead.
        page.locator("#used-layouts .thumb").first.click()
        second = [int(t.get_attribute("data-index")) for t in page.locator("#candidate-layouts .thumb:not(.in-use)").all()][0]
        results = page.evaluate(f"{BOXES}.results")
        page.click(f"#candidate-layouts .thumb[data-index='{second}']")
        boxes_settled(page, results + 1)
        assert page.evaluate(f"{BOXES}.used()") == [second, used[1], picked]
        # "Best matches" goes back to the ranking.
        results = page.evaluate(f"{BOXES}.results")
        page.click("#best-layouts")
        boxes_settled(page, results + 1)
        assert page.evaluate(f"{BOXES}.used()") == used and page.evaluate(f"{BOXES}.chosen") is None
        assert boxes_shown(page) == resized_png

        # Delete the selected box with the keyboard; undo brings it back.
        page.locator("#boxes").click(position={"x": frame["width"] * (rx0 + rx1) / 128, "y": frame["height"] * (ry0 + ry1) / 128})
        assert page.evaluate(f"{BOXES}.selected") == 4
        page.keyboard.press("Delete")
        assert len(page.evaluate(f"{BOXES}.boxes()")) == 4
        page.keyboard.press("Control+z")
        assert page.evaluate(f"{BOXES}.boxes()") == resized

        # Paint mode works on the same page; back in the boxes mode the boxes are kept.
        page.click("#modes button[data-mode='layout']")
        page.wait_for_function("window.spadekitStudio.results >= 1 && window.spadekitStudio.upToDate", timeout=60_000)
        assert page.is_visible("#labels") and not page.is_visible("#boxes") and page.locator("#classes li:visible").count() == 12
        page.click("#modes button[data-mode='boxes']")
        boxes_settled(page, page.evaluate(f"{BOXES}.results") + 1)
        assert page.evaluate(f"{BOXES}.boxes()") == resized
        assert page.evaluate(f"{BOXES}.errors") == 0
        assert page.problems == []


# ------------------------------------------------------------------------------ palette

PALETTE = "window.spadekitPalette"
STUDIO = "window.spadekitStudio"


def palette_settled(page, results_at_least: int) -> None:
    page.wait_for_function(
        f"{PALETTE} && {PALETTE}.results >= {results_at_least} && {PALETTE}.upToDate && {STUDIO}.upToDate", timeout=60_000
    )


def page_labels(page) -> np.ndarray:
    width, height = page.evaluate(f"{STUDIO}.size")
    return np.array(page.evaluate(f"{STUDIO}.labels()"), np.int64).reshape(height, width)


def studio_shown(page) -> bytes:
    return bytes(page.evaluate(f"{STUDIO}.resultPng()"))


def test_palette_mode_sliders_sample_and_brush(palette_dir):
    palette = PalettePipeline.from_pretrained(palette_dir)
    image = Pipeline.from_pretrained("toy")

    def photo(labels: np.ndarray) -> bytes:
        return png_of(image(labels, seed=1)[0])

    with open_page(palette_dir) as page:
        # Opening samples a palette from the model; its layout is on the canvas, its photo beside it.
        palette_settled(page, 1)
        assert page.locator("#modes button.active").inner_text() == "Palette"
        assert page.locator("#sliders input[type='range']").count() == 12
        shares = page.evaluate(f"{PALETTE}.shares()")
        assert sum(shares) == pytest.approx(100)
        seed = page.evaluate(f"{PALETTE}.seed")
        assert shares == pytest.approx([100 * p for p in palette.sample_palettes(1, seed=seed)[0].tolist()], abs=1e-3)
        sampled = page_labels(page)
        np.testing.assert_array_equal(sampled, palette(seed=seed, images=False).labels[0].numpy())
        assert studio_shown(page) == photo(sampled)

        # Move the road slider all the way (the keyboard, as a user would): the layout becomes road.
        results = page.evaluate(f"{PALETTE}.results")
        page.focus("#sliders input[data-id='6']")
        page.keyboard.press("End")
        palette_settled(page, results + 1)
        shares = page.evaluate(f"{PALETTE}.shares()")
        assert shares[6] == 100 and sum(shares) == pytest.approx(100)
        assert page.inner_text("#sliders .slider:nth-child(7) output") == "100%"
        road = page_labels(page)
        assert (road == 6).mean() > 0.9
        vector = [0.0] * 12
        vector[6] = 1.0
        np.testing.assert_array_equal(road, palette(vector, seed=seed, images=False).labels[0].numpy())
        road_photo = studio_shown(page)
        assert road_photo == photo(road) and np.abs(pixels(road_photo) - pixels(photo(sampled))).mean() > 5
        achieved = page.evaluate(f"{PALETTE}.achieved()")
        assert achieved[6] == pytest.approx((road == 6).mean())

        # Half of it back: the others share the rest equally (they were all 0).
        page.keyboard.press("PageDown")  # 100 -> 90
        palette_settled(page, results + 2)
        shares = page.evaluate(f"{PALETTE}.shares()")
        assert shares[6] == 90 and shares[0] == pytest.approx(10 / 11)

        # "Sample a palette" draws another one.
        results = page.evaluate(f"{PALETTE}.results")
        page.click("#sample-palette")
        palette_settled(page, results + 1)
        resampled = page.evaluate(f"{PALETTE}.seed")
        assert page.evaluate(f"{PALETTE}.shares()") == pytest.approx(
            [100 * p for p in palette.sample_palettes(1, seed=resampled)[0].tolist()], abs=1e-3)
        layout = page_labels(page)
        np.testing.assert_array_equal(layout, palette(seed=resampled, images=False).labels[0].numpy())

        # Paint water across the generated layout with the brush: the photo follows.
        page.click("#classes li[data-id='3']")
        frame = page.locator("#labels").bounding_box()
        results = page.evaluate(f"{STUDIO}.results")
        drag(page, frame, (0.1, 0.5), (0.9, 0.5), steps=12)
        page.wait_for_function(f"{STUDIO}.results >= {results + 1} && {STUDIO}.upToDate", timeout=60_000)
        painted = page_labels(page)
        changed = painted != layout
        assert changed.sum() > 200 and set(painted[changed].tolist()) == {3}
        assert studio_shown(page) == photo(painted)
        # Undo brings the generated layout back.
        page.click("#undo")
        np.testing.assert_array_equal(page_labels(page), layout)
        assert page.evaluate(f"{PALETTE}.errors") == 0
        assert page.problems == []
