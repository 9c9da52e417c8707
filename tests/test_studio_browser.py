"""End to end: the studio page in real headless Chromium, painting with mouse and touch, and the
per-region variation of an OASIS model (whose noise may differ per pixel).

Skipped only where Chromium (``/usr/bin/chromium``, Debian's ``chromium`` package) or Playwright is
not installed.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx

import numpy as np
import pytest
from PIL import Image

from spadekit.inference import Pipeline
from spadekit.studio import background_server, create_app
from studio_models import make_oasis_model

from browser_page import browser_page, needs_chromium
from helpers import lively_model

COLORS = [[110, 170, 240], [60, 170, 60], [30, 80, 200], [20, 100, 30]]
NAMES = ["sky", "grass", "water", "tree"]

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    # Images that follow the labels (tests/helpers.py): painting must visibly change the result.
    model = lively_model("custom", {"label_nc": 4, "ngf": 4, "ndf": 4, "width": 64, "use_vae": True, "norm_G": "instance"})
    model.config.data.class_names = NAMES
    model.config.data.colors = COLORS
    return model.save(tmp_path_factory.mktemp("studio-e2e") / "model")


@pytest.fixture(scope="module")
def studio_url(model_dir):
    app = create_app(Pipeline.from_pretrained(model_dir), model_name="tiny test model")
    with background_server(app) as url:
        yield url


@pytest.fixture(scope="module")
def oasis_url(tmp_path_factory):
    model_dir = make_oasis_model(tmp_path_factory.mktemp("studio-e2e-oasis") / "model", NAMES, COLORS)
    app = create_app(Pipeline.from_pretrained(model_dir), model_name="tiny OASIS model")
    with background_server(app) as url:
        yield url


def open_page(url: str):
    return browser_page(url, viewport={"width": 1280, "height": 800}, has_touch=True)


@pytest.fixture
def page(studio_url):
    with open_page(studio_url) as page:
        yield page


@pytest.fixture
def oasis_page(oasis_url):
    with open_page(oasis_url) as page:
        yield page


def wait_settled(page, results_at_least: int) -> None:
    """Until the page shows a result for its latest scene and has at least that many results."""
    page.wait_for_function(
        f"window.spadekitStudio && window.spadekitStudio.results >= {results_at_least} && window.spadekitStudio.upToDate",
        timeout=30_000,
    )


def result_pixels(page) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.locator("#result").screenshot())).convert("RGB"))


def shown_result(page) -> tuple[bytes, np.ndarray]:
    """The PNG the page received for its latest result, and its pixels."""
    data = bytes(page.evaluate("window.spadekitStudio.resultPng()"))
    return data, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(float)


def page_labels(page) -> np.ndarray:
    width, height = page.evaluate("window.spadekitStudio.size")
    return np.array(page.evaluate("window.spadekitStudio.labels()"), np.uint8).reshape(height, width)


def test_paint_and_watch_the_result_change(page, model_dir, tmp_path):
    studio = "window.spadekitStudio"
    wait_settled(page, 1)
    assert page.evaluate(f"{studio}.size") == [64, 64]
    assert page.locator("#classes li").count() == 4
    # A VAE's latent is one vector per image: no per-region variation on offer.
    assert page.is_visible("#variation") and not page.is_visible("#region-variation")
    before_counts = page.evaluate(f"{studio}.classCounts()")
    before = result_pixels(page)
    labels_before, (_, image_before) = page_labels(page), shown_result(page)
    results = page.evaluate(f"{studio}.results")

    # Pick "water" by searching the palette, then paint three strokes across the canvas.
    page.fill("#class-search", "wat")
    assert page.locator("#classes li:visible").count() == 1
    page.press("#class-search", "Enter")
    assert "water" in page.inner_text("#current-name")
    page.fill("#class-search", "")
    box = page.locator("#labels").bounding_box()
    for frac_y in (0.2, 0.5, 0.8):
        y = box["y"] + box["height"] * frac_y
        page.mouse.move(box["x"] + box["width"] * 0.1, y)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] * (0.1 + 0.08 * step), y, steps=2)
        page.mouse.up()
    wait_settled(page, results + 1)
    after_counts = page.evaluate(f"{studio}.classCounts()")
    assert after_counts.get("2", 0) > before_counts.get("2", 0) + 100
    after = result_pixels(page)
    assert not np.array_equal(before, after), "the synthesized image did not change after painting"
    assert page.evaluate(f"{studio}.errors") == 0
    # The painted pixels changed (the strokes cross the whole canvas, so the rest changes too).
    labels_after = page_labels(page)
    painted = labels_after != labels_before
    assert painted.sum() > 100 and set(labels_after[painted].tolist()) == {2}
    png_after, image_after = shown_result(page)
    change = np.abs(image_after - image_before).mean(axis=2)
    assert change[painted].mean() > 20, f"the painted pixels changed by {change[painted].mean():.1f} grey levels only"
    # What the page shows is the Pipeline's image for the page's labels and seed, byte for byte.
    expected = Pipeline.from_pretrained(model_dir)(labels_after, seed=page.evaluate(f"{studio}.seed"), output="pil")[0]
    buffer = io.BytesIO()
    expected.save(buffer, format="PNG")
    assert png_after == buffer.getvalue()

    # Flood fill by touch, then undo restores the exact label map.
    page.click("button[data-tool='fill']")
    page.click("#classes li[data-id='3']")
    filled_before = page.evaluate(f"{studio}.classCounts()")
    page.touchscreen.tap(box["x"] + box["width"] * 0.05, box["y"] + box["height"] * 0.05)
    page.wait_for_function(f"{studio}.classCounts()['3'] > {filled_before.get('3', 0)}", timeout=10_000)
    page.click("#undo")
    assert page.evaluate(f"{studio}.classCounts()") == filled_before
    page.click("#redo")
    assert page.evaluate(f"{studio}.classCounts()") != filled_before

    # A new variation (seed) changes the image but not the labels.
    labels_now = page.evaluate(f"{studio}.classCounts()")
    wait_settled(page, 1)
    shown = result_pixels(page)
    results = page.evaluate(f"{studio}.results")
    page.click("#variation")
    wait_settled(page, results + 1)
    assert page.evaluate(f"{studio}.classCounts()") == labels_now
    assert not np.array_equal(shown, result_pixels(page))

    page.screenshot(path=str(tmp_path / "studio.png"), full_page=True)
    assert (tmp_path / "studio.png").stat().st_size > 10_000
    assert page.problems == []


def test_examples_style_and_bad_upload(page, tmp_path):
    studio = "window.spadekitStudio"
    wait_settled(page, 1)
    # Load another example: the label map changes to that example.
    first = page.evaluate(f"{studio}.classCounts()")
    page.select_option("#examples", index=1)
    results = page.evaluate(f"{studio}.results")
    page.click("#load-example")
    wait_settled(page, results + 1)
    assert page.evaluate(f"{studio}.classCounts()") != first

    # A style image (this model has an encoder) changes the result.
    shown = result_pixels(page)
    style = tmp_path / "style.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 48, 3), dtype=np.uint8)).save(style)
    results = page.evaluate(f"{studio}.results")
    page.set_input_files("#upload-style", str(style))
    wait_settled(page, results + 1)
    assert page.is_visible("#style-preview")
    assert not np.array_equal(shown, result_pixels(page))

    # A label map with a colour that is no class: the page shows the server's message, keeps the scene.
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((64, 64, 3), [1, 2, 3], np.uint8)).save(bad)
    kept = page.evaluate(f"{studio}.classCounts()")
    page.set_input_files("#upload-labels", str(bad))
    page.wait_for_function("document.getElementById('status').textContent.includes('not in the palette')", timeout=10_000)
    assert page.evaluate(f"{studio}.classCounts()") == kept

    # A good upload (ids at another size) replaces the scene.
    good = tmp_path / "good.png"
    ids = np.zeros((32, 32), np.uint8)
    ids[16:] = 2
    Image.fromarray(ids).save(good)
    page.set_input_files("#upload-labels", str(good))
    page.wait_for_function(f"{studio}.classCounts()['2'] === 64 * 32", timeout=10_000)
    assert page.evaluate(f"{studio}.classCounts()") == {"0": 64 * 32, "2": 64 * 32}
    assert [p for p in page.problems if "400" not in p and "422" not in p] == []


def result_png(page) -> bytes:
    """The exact PNG bytes the page received for the image it shows."""
    return base64.b64decode(page.evaluate("window.spadekitStudio.resultBase64()"))


def test_new_variation_for_one_region(oasis_page, oasis_url, tmp_path):
    page, studio = oasis_page, "window.spadekitStudio"
    wait_settled(page, 1)
    assert page.is_visible("#region-variation") and not page.is_visible("#region-reset")
    # A known scene: sky, grass, a pond of water (class 2) bottom left, a tree.
    ids = np.zeros((64, 64), np.uint8)
    ids[32:] = 1
    ids[48:, :32] = 2
    ids[16:32, 40:48] = 3
    upload = tmp_path / "scene.png"
    Image.fromarray(ids).save(upload)
    results = page.evaluate(f"{studio}.results")
    page.set_input_files("#upload-labels", str(upload))
    wait_settled(page, results + 1)
    assert np.array_equal(np.array(page.evaluate(f"{studio}.ids()")).reshape(64, 64), ids)
    seed = page.evaluate(f"{studio}.seed")
    before = result_png(page)

    page.click("#classes li[data-id='2']")
    results = page.evaluate(f"{studio}.results")
    page.click("#region-variation")
    wait_settled(page, results + 1)
    region = page.evaluate(f"{studio}.region")
    assert region["cls"] == 2 and page.evaluate(f"{studio}.seed") == seed, "the image seed must stay"
    assert page.is_visible("#region-reset") and "water" in page.inner_text("#region-info")
    after = result_png(page)

    with httpx.Client(base_url=oasis_url, timeout=60) as client:
        def synth(**fields) -> bytes:
            buffer = io.BytesIO()
            Image.fromarray(ids).save(buffer, format="PNG")
            r = client.post("/api/synthesize", files={"labels": ("l.png", buffer.getvalue(), "image/png")},
                            data={k: str(v) for k, v in fields.items()})
            assert r.status_code == 200, r.text
            return r.content

        # What the page shows is exactly what its seeds give through the API.
        assert synth(seed=seed) == before
        assert synth(seed=seed, region_class=2, region_seed=region["seed"]) == after
        reseeded = np.asarray(Image.open(io.BytesIO(synth(seed=seed + 1))), float)
    base = np.asarray(Image.open(io.BytesIO(before)), float)
    assert base.std() > 10, "random model output is flat"
    change = np.abs(np.asarray(Image.open(io.BytesIO(after)), float) - base).mean(-1)
    full = np.abs(reseeded - base).mean(-1)
    water = ids == 2
    assert change[water].mean() > 5
    assert change[water].mean() > 1.4 * change[~water].mean()
    assert change[~water].mean() < 0.4 * full[~water].mean()

    # Painting elsewhere keeps the region's own seed.
    page.click("#classes li[data-id='3']")
    box = page.locator("#labels").bounding_box()
    results = page.evaluate(f"{studio}.results")
    page.mouse.click(box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.15)
    wait_settled(page, results + 1)
    painted = np.array(page.evaluate(f"{studio}.ids()"), np.uint8).reshape(64, 64)
    assert (painted == 3).sum() > (ids == 3).sum() and np.array_equal(painted == 2, water)
    with httpx.Client(base_url=oasis_url, timeout=60) as client:
        buffer = io.BytesIO()
        Image.fromarray(painted).save(buffer, format="PNG")
        data = {"seed": str(seed), "region_class": "2", "region_seed": str(region["seed"])}
        r = client.post("/api/synthesize", files={"labels": ("l.png", buffer.getvalue(), "image/png")}, data=data)
    assert r.content == result_png(page)

    # The reset button gives the plain image back.
    results = page.evaluate(f"{studio}.results")
    page.keyboard.press("Control+z")
    wait_settled(page, results + 1)
    results = page.evaluate(f"{studio}.results")
    page.click("#region-reset")
    wait_settled(page, results + 1)
    assert page.evaluate(f"{studio}.region") is None and result_png(page) == before
    # A class with no pixels on the canvas: a message, no request with a region.
    page.click("#classes li[data-id='0']")
    page.click("button[data-tool='fill']")
    results = page.evaluate(f"{studio}.results")
    page.mouse.click(box["x"] + box["width"] * 0.2, box["y"] + box["height"] * 0.9)  # water → sky
    wait_settled(page, results + 1)
    page.click("#classes li[data-id='2']")
    page.click("#region-variation")
    page.wait_for_function("document.getElementById('status').textContent.includes('Paint some water first')", timeout=10_000)
    assert page.evaluate(f"{studio}.region") is None
    assert page.evaluate(f"{studio}.errors") == 0 and page.problems == []
