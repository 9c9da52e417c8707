"""The studio's HTTP API, served by a real uvicorn server on a background thread.

A tiny random-weight release model (4 classes, VAE with encoder, 64x64) is made in a temp dir; the
per-region noise tests use a tiny random-weight OASIS model with the same classes.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import socket
import statistics
import time
import urllib.parse
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from spadekit.inference import Pipeline
from spadekit.studio import StudioLimits, background_server, create_app
from spadekit.studio.app import STATIC_DIR
from studio_models import make_oasis_model

from helpers import assert_lively, lively_model

COLORS = [[110, 170, 240], [60, 170, 60], [30, 80, 200], [20, 100, 30]]
NAMES = ["sky", "grass", "water", "tree"]


def make_model(path: Path, *, vae: bool = True, colors: bool = True, label_nc: int = 4, dontcare: bool = False) -> Path:
    """A tiny random model whose images follow the labels (see tests/helpers.py)."""
    overrides = {"label_nc": label_nc, "contain_dontcare": dontcare, "ngf": 4, "ndf": 4, "width": 64,
                 "use_vae": vae, "norm_G": "instance"}
    model = lively_model("custom", overrides, discriminator=True)
    model.config.data.class_names = (NAMES + [f"thing {i}" for i in range(4, label_nc)])[:label_nc]
    model.config.data.colors = COLORS[:label_nc] if colors else None
    return model.save(path)


def png(array: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def scene(size: int = 64) -> np.ndarray:
    """(size, size) uint8 ids: sky on top, grass below, a water pond and a tree (drawn here, not by the code under test)."""
    ids = np.zeros((size, size), np.uint8)
    ids[size // 2 :] = 1
    ids[size * 3 // 4 :, : size // 2] = 2
    ids[size // 4 : size // 2, size * 5 // 8 : size * 3 // 4] = 3
    return ids


def decode(content: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(content)))


def rss_bytes() -> int:
    """Resident memory of this process (the server runs in it)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("studio") / "model")


@pytest.fixture(scope="module")
def pipeline(model_dir) -> Pipeline:
    return Pipeline.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def server(pipeline):
    app = create_app(pipeline, model_name="tiny", limits=StudioLimits(max_upload_bytes=200_000, max_side=1024, max_pixels=1024 * 512))
    with background_server(app) as url:
        yield url, app


@pytest.fixture(scope="module")
def client(server):
    url, _ = server
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def synth(client: httpx.Client, labels: bytes, seed: int | None = 5, style: bytes | None = None, name: str = "labels.png") -> httpx.Response:
    files = {"labels": (name, labels, "image/png")}
    if style is not None:
        files["style"] = ("style.png", style, "image/png")
    data = {"seed": str(seed)} if seed is not None else {}
    return client.post("/api/synthesize", files=files, data=data)


# ---------------------------------------------------------------------------- model and page


def test_model_description(client):
    info = client.get("/api/model").json()
    assert info["classes"] == NAMES
    assert info["palette"] == COLORS
    assert info["size"] == [64, 64]
    assert info["has_encoder"] is True
    assert info["capabilities"] == {"style_image": True, "seed": True, "dontcare": False, "region_noise": False}
    assert info["limits"]["max_side"] == 1024
    assert "/api/synthesize" in client.get("/api/openapi.json").json()["paths"]


def test_page_and_static_files_are_local(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for src in re.findall(r'(?:src|href)="([^"]+)"', page.text):
        assert src.startswith("/static/"), src
        assert client.get(src).status_code == 200, src
    # Nothing may come from elsewhere: no absolute URLs in the page's code or styles.
    for file in Path(str(STATIC_DIR)).iterdir():
        text = file.read_text()
        if file.suffix == ".svg":
            text = text.replace("http://www.w3.org/2000/svg", "")
        assert not re.search(r"https?://|//cdn", text), file.name


def test_model_without_colours_gets_distinct_generated_palette(tmp_path):
    pipe = Pipeline.from_pretrained(make_model(tmp_path / "plain", colors=False, label_nc=13))
    app = create_app(pipe)
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        palette = np.array(c.get("/api/model").json()["palette"], np.uint8)
        assert palette.shape == (13, 3)
        assert len({tuple(p) for p in palette.tolist()}) == 13
        # A picture painted in those colours reads back as the ids it was painted with.
        ids = (np.arange(64 * 64).reshape(64, 64) // 7 % 13).astype(np.uint8)
        back = c.post("/api/labels", files={"labels": ("l.png", png(palette[ids]), "image/png")}, data={"format": "ids"})
        assert back.status_code == 200
        np.testing.assert_array_equal(decode(back.content), ids)


def test_dontcare_pixels_travel_as_their_own_colour(tmp_path):
    app = create_app(Pipeline.from_pretrained(make_model(tmp_path / "dc", dontcare=True)))
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        info = c.get("/api/model").json()
        assert info["capabilities"]["dontcare"] is True
        dontcare = info["dontcare_color"]
        assert dontcare not in info["palette"]
        ids = scene()
        ids[:8, :8] = 255
        coloured = c.post("/api/labels", files={"labels": ("l.png", png(ids), "image/png")})
        pixels = decode(coloured.content)
        assert pixels[0, 0].tolist() == dontcare and pixels[-1, -1].tolist() == COLORS[ids[-1, -1]]
        back = c.post("/api/labels", files={"labels": ("l.png", coloured.content, "image/png")}, data={"format": "ids"})
        np.testing.assert_array_equal(decode(back.content), ids)
        assert synth(c, coloured.content, seed=2).content == synth(c, png(ids), seed=2).content
        assert synth(c, png(scene()), seed=2).content != synth(c, png(ids), seed=2).content


# ---------------------------------------------------------------------------- synthesis


def test_synthesize_returns_png_of_model_size(client):
    r = synth(client, png(scene()), seed=123)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/png"
    assert r.headers["x-seed"] == "123"
    image = Image.open(io.BytesIO(r.content))
    assert image.size == (64, 64) and image.mode == "RGB"


def test_colour_and_id_label_maps_give_the_same_image(client):
    ids = scene()
    by_ids = synth(client, png(ids), seed=9)
    by_colours = synth(client, png(np.array(COLORS, np.uint8)[ids]), seed=9)
    assert by_ids.status_code == by_colours.status_code == 200
    assert by_ids.content == by_colours.content


def test_seed_reproduces_and_varies(client):
    a, b, c = (synth(client, png(scene()), seed=s) for s in (1, 1, 2))
    assert a.content == b.content
    assert not np.array_equal(decode(a.content), decode(c.content))


def test_response_is_the_pipeline_image_byte_for_byte(client, model_dir):
    # An independent Pipeline on the same model files: the studio adds nothing and loses nothing.
    reference = Pipeline.from_pretrained(model_dir)
    for seed in (0, 5):
        expected = reference(scene(), seed=seed, num_samples=1, output="pil")[0]
        buffer = io.BytesIO()
        expected.save(buffer, format="PNG")
        got = synth(client, png(scene()), seed=seed)
        assert got.status_code == 200
        np.testing.assert_array_equal(decode(got.content), np.asarray(expected))
        assert got.content == buffer.getvalue()
    # The comparison means something: this model's images depend on the labels.
    assert_lively(reference(scene(), seed=0, output="tensor"))


def test_painting_a_class_changes_the_painted_region(client):
    before = scene()
    after = before.copy()
    after[4:28, 4:40] = 2  # water painted into the sky
    painted = after != before
    a = decode(synth(client, png(before), seed=4).content).astype(float)
    b = decode(synth(client, png(after), seed=4).content).astype(float)
    change = np.abs(a - b).mean(axis=2)
    # SPADE's convolutions spread a change a little beyond its region, but it is largest inside.
    assert change[painted].mean() > 20, f"painted region changed by {change[painted].mean():.1f} grey levels only"
    assert change[painted].mean() > 1.5 * change[~painted].mean()  # here about 35 inside, 17 outside
    whole = after.copy()
    whole[:, :] = 2
    assert np.abs(decode(synth(client, png(whole), seed=4).content).astype(float) - a).mean() > 20


def test_missing_seed_gets_a_fresh_one(client):
    r = synth(client, png(scene()), seed=None)
    assert r.status_code == 200
    again = synth(client, png(scene()), seed=int(r.headers["x-seed"]))
    assert again.content == r.content


def test_other_sizes_are_resized_with_nearest_neighbour(client):
    small = scene(32)
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)
    assert synth(client, png(small), seed=3).content == synth(client, png(big), seed=3).content


def test_style_image_steers_the_result(client):
    rng = np.random.default_rng(0)
    style = png(rng.integers(0, 255, (80, 100, 3), dtype=np.uint8))
    plain = synth(client, png(scene()), seed=8)
    styled = synth(client, png(scene()), seed=8, style=style)
    assert styled.status_code == 200, styled.text
    assert not np.array_equal(decode(plain.content), decode(styled.content))


def test_style_refused_without_encoder(tmp_path):
    app = create_app(Pipeline.from_pretrained(make_model(tmp_path / "novae", vae=False)))
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        info = c.get("/api/model").json()
        assert info["has_encoder"] is False and info["capabilities"]["seed"] is False
        r = synth(c, png(scene()), style=png(np.zeros((8, 8, 3), np.uint8)))
        assert r.status_code == 422
        assert r.json()["field"] == "style" and "style encoder" in r.json()["error"]


# ---------------------------------------------------------------------------- bad input


def _truncated_png() -> bytes:
    data = png(np.random.default_rng(1).integers(0, 4, (64, 64), dtype=np.uint8))
    return data[: len(data) // 2]


@pytest.mark.parametrize(
    "labels, data, status, field, words",
    [
        (png(np.full((64, 64), 9, np.uint8)), {}, 422, "labels", "9"),
        (png(np.full((64, 64, 3), [1, 2, 3], np.uint8)), {}, 422, "labels", "(1, 2, 3)"),
        (png(np.zeros((64, 64, 3), np.uint8), fmt="JPEG"), {}, 415, "labels", "JPEG"),
        (b"definitely not an image", {}, 415, "labels", "not a readable image"),
        (_truncated_png(), {}, 422, "labels", "truncated"),
        (png(np.zeros((1, 1500), np.uint8)), {}, 413, "labels", "1500x1"),
        (png(np.zeros((600, 1000), np.uint8)), {}, 413, "labels", "pixels in all"),
        (b"", {}, 400, "labels", "empty"),
        (png(scene()), {"seed": "abc"}, 400, "seed", "not an integer"),
        (png(scene()), {"seed": "-1"}, 400, "seed", "0.."),
        (png(scene()), {"colour": "red"}, 400, "colour", "unknown field"),
    ],
    ids=["unknown-id", "unknown-colour", "jpeg", "not-image", "truncated", "too-wide", "too-many-pixels", "empty", "seed-text", "seed-negative", "unknown-field"],
)
def test_bad_inputs_get_4xx_json_naming_the_problem(client, labels, data, status, field, words):
    r = client.post("/api/synthesize", files={"labels": ("labels.png", labels, "image/png")}, data=data)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["field"] == field
    assert words in body["error"]


def test_missing_labels_and_wrong_content_type(client):
    r = client.post("/api/synthesize", files={"seed": (None, "1")})
    assert r.status_code == 400 and r.json()["field"] == "labels" and "missing" in r.json()["error"]
    r = client.post("/api/synthesize", json={"labels": [[0]]})
    assert r.status_code == 415 and "multipart/form-data" in r.json()["error"]
    r = client.post("/api/synthesize", files={"labels": (None, "0,1,2")})
    assert r.status_code == 400 and "must be a file upload" in r.json()["error"]


def test_body_over_the_upload_limit_is_refused(client):
    big = np.random.default_rng(0).integers(0, 256, (600, 600), dtype=np.uint8)  # noise: ~360 kB as PNG
    data = png(big)
    assert len(data) > 200_000
    r = synth(client, data)
    assert r.status_code == 413 and "limit" in r.json()["error"]

    # Chunked upload: no Content-Length to check up front, the limit applies while reading.
    def chunks():
        body = b"--b\r\nContent-Disposition: form-data; name=\"labels\"; filename=\"l.png\"\r\n\r\n" + data + b"\r\n--b--\r\n"
        for start in range(0, len(body), 16384):
            yield body[start : start + 16384]

    url = str(client.base_url)
    with httpx.Client(timeout=60) as raw:
        r = raw.post(f"{url}/api/synthesize", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and "limit" in r.json()["error"]
    # The server is still fine.
    assert synth(client, png(scene())).status_code == 200


def test_unknown_route_is_json_404(client):
    r = client.get("/api/nothing")
    assert r.status_code == 404 and "error" in r.json()


# ---------------------------------------------------------------------------- examples and label conversion


def test_examples_are_valid_label_maps(client):
    examples = client.get("/api/examples").json()
    assert len(examples) >= 3
    lookup = {tuple(c): i for i, c in enumerate(COLORS)}
    for example in examples:
        colours = decode(client.get(example["url"]).content)
        ids = decode(client.get(example["url"], params={"format": "ids"}).content)
        assert colours.shape == (64, 64, 3) and ids.shape == (64, 64)
        assert ids.max() < 4
        as_ids = np.vectorize(lambda r, g, b: lookup[(r, g, b)])(colours[..., 0], colours[..., 1], colours[..., 2])
        np.testing.assert_array_equal(as_ids, ids)
        assert len(np.unique(ids)) >= 2
    assert client.get(f"/api/examples/{len(examples)}.png").status_code == 404


def test_labels_endpoint_round_trip(client):
    ids = scene()
    r = client.post("/api/labels", files={"labels": ("l.png", png(ids), "image/png")})
    assert r.status_code == 200
    np.testing.assert_array_equal(decode(r.content), np.array(COLORS, np.uint8)[ids])
    r = client.post("/api/labels", files={"labels": ("l.png", png(np.array(COLORS, np.uint8)[ids]), "image/png")}, data={"format": "ids"})
    np.testing.assert_array_equal(decode(r.content), ids)
    r = client.post("/api/labels", files={"labels": ("l.png", png(ids), "image/png")}, data={"format": "jpeg"})
    assert r.status_code == 400 and r.json()["field"] == "format"


# ---------------------------------------------------------------------------- concurrency


def test_200_concurrent_requests_all_answered_memory_steady(server, client):
    url, app = server
    worker = app.state.worker
    labels = png(scene())
    reference = {seed: synth(client, labels, seed=seed).content for seed in (0, 1, 2)}
    for seed in range(20):  # warm up allocator and thread pools before measuring memory
        synth(client, labels, seed=seed)
    done_before = worker.stats()["completed"]
    rss_before = rss_bytes()

    async def one(c: httpx.AsyncClient, seed: int) -> tuple[int, bytes, str, float]:
        start = time.perf_counter()
        r = await c.post("/api/synthesize", files={"labels": ("l.png", labels, "image/png")}, data={"seed": str(seed % 3)})
        return r.status_code, r.content, r.headers.get("x-seed", ""), time.perf_counter() - start

    async def burst() -> list:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as c:
            return await asyncio.gather(*(one(c, i) for i in range(200)))

    start = time.perf_counter()
    results = asyncio.run(burst())
    wall = time.perf_counter() - start
    rss_after = rss_bytes()
    latencies = sorted(r[3] for r in results)
    pct = {p: latencies[min(len(latencies) - 1, int(round(p / 100 * (len(latencies) - 1))))] for p in (50, 90, 99)}
    print(
        f"\n200 concurrent: wall {wall:.2f}s, latency p50 {pct[50] * 1000:.0f} ms, p90 {pct[90] * 1000:.0f} ms, "
        f"p99 {pct[99] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms, mean {statistics.mean(latencies) * 1000:.0f} ms; "
        f"RSS before {rss_before / 2**20:.1f} MiB, after {rss_after / 2**20:.1f} MiB"
    )
    assert [r[0] for r in results] == [200] * 200
    for i, (_, content, seed, _) in enumerate(results):
        assert seed == str(i % 3)
        # Every answer is the right image for its request: the unbatched one, up to the float
        # rounding of a batched call (at most one grey level).
        difference = np.abs(decode(content).astype(int) - decode(reference[i % 3]).astype(int))
        assert difference.max() <= 1 and difference.mean() < 0.01
    assert worker.stats()["completed"] - done_before == 200
    assert worker.max_running_seen == 1  # never two syntheses at once
    assert worker.pending == 0
    assert rss_after - rss_before < 100 * 2**20


class _SlowPipeline:
    """The real pipeline, with a pause in every synthesis (to fill the queue)."""

    def __init__(self, pipeline: Pipeline, seconds: float) -> None:
        self._pipeline = pipeline
        self._seconds = seconds

    def __getattr__(self, name):
        return getattr(self._pipeline, name)

    def __call__(self, *args, **kwargs):
        time.sleep(self._seconds)
        return self._pipeline(*args, **kwargs)


def test_full_queue_answers_503_with_retry_after(pipeline):
    app = create_app(_SlowPipeline(pipeline, 1.0), max_pending=1)
    labels = png(scene())

    async def burst(url: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            return await asyncio.gather(*(c.post("/api/synthesize", files={"labels": ("l.png", labels, "image/png")}) for _ in range(4)))

    with background_server(app) as url:
        responses = asyncio.run(burst(url))
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200 and codes[-1] == 503
    busy = next(r for r in responses if r.status_code == 503)
    assert busy.headers["retry-after"] == "1" and "busy" in busy.json()["error"]


class _BrokenPipeline(_SlowPipeline):
    def __call__(self, *args, **kwargs):
        raise RuntimeError("out of memory (simulated)")


def test_a_failing_synthesis_is_a_json_500_and_the_server_keeps_serving(pipeline):
    app = create_app(_BrokenPipeline(pipeline, 0.0))
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(2):
            r = synth(c, png(scene()))
            assert r.status_code == 500 and "out of memory (simulated)" in r.json()["error"]
        assert c.get("/api/status").json()["failed"] == 2


def test_slow_client_does_not_block_others(server, client):
    url, _ = server
    parts = urllib.parse.urlsplit(url)
    boundary = "slowclient"
    head = f"--{boundary}\r\nContent-Disposition: form-data; name=\"labels\"; filename=\"l.png\"\r\n\r\n".encode()
    body = head + png(scene()) + f"\r\n--{boundary}--\r\n".encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as slow:
        slow.sendall(
            (
                f"POST /api/synthesize HTTP/1.1\r\nHost: {parts.hostname}\r\nContent-Type: multipart/form-data; "
                f"boundary={boundary}\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body[:40]
        )
        # The slow client has sent 40 bytes and stalls; other clients are served meanwhile.
        start = time.perf_counter()
        for seed in range(3):
            assert synth(client, png(scene()), seed=seed).status_code == 200
        assert time.perf_counter() - start < 20
        slow.sendall(body[40:])
        response = b""
        while b"\r\n\r\n" not in response:
            response += slow.recv(65536)
        assert response.startswith(b"HTTP/1.1 200")


def test_cli_parser_defaults_to_loopback_and_reports_missing_model(tmp_path, capsys):
    from spadekit.cli import build_parser, main

    args = build_parser().parse_args(["studio"])
    assert (args.host, args.port, args.model) == ("127.0.0.1", 7860, "toy")
    assert main(["studio", "--model", str(tmp_path / "missing"), "--port", "0"]) == 2
    assert "missing" in capsys.readouterr().err


# ---------------------------------------------------------------------------- per-region noise (OASIS)


@pytest.fixture(scope="module")
def oasis_client(tmp_path_factory):
    path = make_oasis_model(tmp_path_factory.mktemp("studio-oasis") / "model", NAMES, COLORS)
    app = create_app(Pipeline.from_pretrained(path), model_name="tiny oasis")
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def region_synth(client: httpx.Client, labels: bytes, seed: int | None, region_class, region_seed=None) -> httpx.Response:
    data = {"region_class": str(region_class)}
    if seed is not None:
        data["seed"] = str(seed)
    if region_seed is not None:
        data["region_seed"] = str(region_seed)
    return client.post("/api/synthesize", files={"labels": ("labels.png", labels, "image/png")}, data=data)


def test_oasis_model_advertises_region_noise(oasis_client):
    info = oasis_client.get("/api/model").json()
    assert info["capabilities"] == {"style_image": False, "seed": True, "dontcare": False, "region_noise": True}
    schema = oasis_client.get("/api/openapi.json").json()["paths"]["/api/synthesize"]["post"]["requestBody"]
    fields = schema["content"]["multipart/form-data"]["schema"]["properties"]
    assert {"region_class", "region_seed"} <= set(fields)


def test_region_variation_changes_mostly_that_class(oasis_client):
    ids = scene()
    labels = png(ids)
    plain = synth(oasis_client, labels, seed=1)
    assert plain.status_code == 200 and "x-region-seed" not in plain.headers
    base = decode(plain.content).astype(float)
    assert base.std() > 10 and ((base == 0) | (base == 255)).mean() < 0.2, "random model output is flat or saturated"
    r = region_synth(oasis_client, labels, seed=1, region_class=2, region_seed=77)
    assert r.status_code == 200, r.text
    assert (r.headers["x-seed"], r.headers["x-region-class"], r.headers["x-region-seed"]) == ("1", "2", "77")
    change = np.abs(decode(r.content).astype(float) - base).mean(-1)
    full = np.abs(decode(synth(oasis_client, labels, seed=2).content).astype(float) - base).mean(-1)
    water = ids == 2
    assert change[water].mean() > 5, "the region did not change"
    # The water pixels change more than the rest, and the rest far less than under a new image seed
    # (a random-weight generator mixes the noise over a wide field, so the rest does move a little).
    assert change[water].mean() > 1.4 * change[~water].mean(), (change[water].mean(), change[~water].mean())
    assert change[~water].mean() < 0.4 * full[~water].mean(), (change[~water].mean(), full[~water].mean())

    # The same seeds give the same bytes; another region seed another region.
    assert region_synth(oasis_client, labels, seed=1, region_class=2, region_seed=77).content == r.content
    other = decode(region_synth(oasis_client, labels, seed=1, region_class=2, region_seed=78).content).astype(float)
    assert np.abs(other - decode(r.content))[water].mean() > 5
    # Colour-coded labels pick the same pixels.
    coloured = png(np.array(COLORS, np.uint8)[ids])
    assert region_synth(oasis_client, coloured, seed=1, region_class=2, region_seed=77).content == r.content


def test_region_seed_omitted_gets_a_fresh_one(oasis_client):
    labels = png(scene())
    first = region_synth(oasis_client, labels, seed=None, region_class=3)
    assert first.status_code == 200, first.text
    seed, region_seed = int(first.headers["x-seed"]), int(first.headers["x-region-seed"])
    again = region_synth(oasis_client, labels, seed=seed, region_class=3, region_seed=region_seed)
    assert again.content == first.content


def _without_tree() -> np.ndarray:
    ids = scene()
    ids[ids == 3] = 1
    return ids


@pytest.mark.parametrize(
    "labels, data, status, field, words",
    [
        (scene(), {"region_class": "water"}, 400, "region_class", "not an integer"),
        (scene(), {"region_class": "4"}, 422, "region_class", "not known to this model (ids 0..3)"),
        (scene(), {"region_class": "-1"}, 422, "region_class", "not known"),
        (_without_tree(), {"region_class": "3"}, 422, "region_class", "class 3 (tree) has no pixels"),
        (scene(), {"region_seed": "5"}, 400, "region_seed", "send region_class too"),
        (scene(), {"region_class": "2", "region_seed": "-1"}, 400, "region_seed", "0.."),
        (scene(), {"region_class": "2", "region_seed": "x"}, 400, "region_seed", "not an integer"),
        (scene(), {"region_class": "2", "seed": "1.5"}, 400, "seed", "not an integer"),
    ],
    ids=["class-text", "class-too-big", "class-negative", "class-absent", "seed-without-class", "seed-negative",
         "seed-text", "image-seed-text"],
)
def test_bad_region_fields_get_4xx_naming_the_field(oasis_client, labels, data, status, field, words):
    r = oasis_client.post("/api/synthesize", files={"labels": ("labels.png", png(labels), "image/png")}, data=data)
    assert r.status_code == status, r.text
    assert r.json()["field"] == field and words in r.json()["error"], r.json()


def test_region_class_sent_as_a_file_is_refused(oasis_client):
    files = {"labels": ("labels.png", png(scene()), "image/png"), "region_class": ("c.txt", b"2", "text/plain")}
    r = oasis_client.post("/api/synthesize", files=files)
    assert r.status_code == 400 and r.json()["field"] == "region_class" and "not a file" in r.json()["error"]


@pytest.mark.parametrize("data, field", [({"region_class": "2", "region_seed": "3"}, "region_class"), ({"region_seed": "3"}, "region_seed")])
def test_spade_models_refuse_region_fields_with_a_clear_message(client, data, field):
    r = client.post("/api/synthesize", files={"labels": ("labels.png", png(scene()), "image/png")}, data={"seed": "1", **data})
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and "cannot resample one region" in r.json()["error"]
    assert "region_noise" in r.json()["error"]
