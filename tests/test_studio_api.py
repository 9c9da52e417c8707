"""The studio's HTTP API, served by a real uvicorn server on a background thread.

A tiny random-weight release model (4 classes, VAE with encoder, 64x64) is made in a temp dir.
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

import spadekit.config
import spadekit.models
import spadekit.release
from spadekit.inference import Pipeline
from spadekit.studio import StudioLimits, background_server, create_app
from spadekit.studio.app import STATIC_DIR

COLORS = [[110, 170, 240], [60, 170, 60], [30, 80, 200], [20, 100, 30]]
NAMES = ["sky", "grass", "water", "tree"]


def make_model(path: Path, *, vae: bool = True, colors: bool = True, label_nc: int = 4, dontcare: bool = False) -> Path:
    overrides = [
        f"model.label_nc={label_nc}",
        f"model.contain_dontcare={str(dontcare).lower()}",
        "model.ngf=4",
        "model.ndf=4",
        "model.width=64",
        f"model.use_vae={str(vae).lower()}",
        "model.norm_G=instance",
    ]
    cfg = spadekit.config.load_config("custom", overrides)
    cfg.data.class_names = (NAMES + [f"thing {i}" for i in range(4, label_nc)])[:label_nc]
    cfg.data.colors = COLORS[:label_nc] if colors else None
    g, d, e = spadekit.models.build_networks(cfg.model)
    return spadekit.release.SpadeModel(cfg, g, d, e).save(path)


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
    assert info["capabilities"] == {"style_image": True, "seed": True, "dontcare": False}
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


def test_labels_change_the_image(client):
    other = scene()
    other[:, :] = 2
    assert not np.array_equal(decode(synth(client, png(scene()), seed=4).content), decode(synth(client, png(other), seed=4).content))


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
