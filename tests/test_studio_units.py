"""Studio building blocks without a server: the synthesis worker, examples, upload checks."""

from __future__ import annotations

import asyncio
import io
import threading

import numpy as np
import pytest
from PIL import Image

from spadekit.studio.examples import assign_roles, make_examples
from spadekit.studio.uploads import StudioLimits, UploadError, label_png, parse_seed, read_label_image, read_style_image
from spadekit.studio.worker import QueueFull, SynthesisWorker


def test_worker_runs_jobs_one_at_a_time_in_order():
    worker = SynthesisWorker(max_pending=50)
    order: list[int] = []
    active = [0]
    most = [0]
    lock = threading.Lock()

    def job(i: int):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        order.append(i)
        threading.Event().wait(0.002)
        with lock:
            active[0] -= 1
        return i * i

    async def main():
        return await asyncio.gather(*(worker.run(lambda i=i: job(i)) for i in range(30)))

    assert asyncio.run(main()) == [i * i for i in range(30)]
    assert order == list(range(30))
    assert most[0] == 1 and worker.max_running_seen == 1
    assert worker.stats()["completed"] == 30 and worker.pending == 0
    worker.close()


def test_worker_refuses_when_full_and_drops_cancelled_jobs():
    worker = SynthesisWorker(max_pending=2)
    gate = threading.Event()
    ran: list[str] = []

    async def main():
        first = asyncio.ensure_future(worker.run(lambda: (gate.wait(10), ran.append("first"))))
        second = asyncio.ensure_future(worker.run(lambda: ran.append("second")))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            await worker.run(lambda: ran.append("third"))
        second.cancel()  # its client went away while it waited
        await asyncio.sleep(0.05)
        gate.set()
        await first
        with pytest.raises(asyncio.CancelledError):
            await second

    asyncio.run(main())
    assert ran == ["first"]
    assert worker.pending == 0
    worker.close()


def test_worker_counts_failures_and_keeps_going():
    worker = SynthesisWorker()

    async def main():
        with pytest.raises(ZeroDivisionError):
            await worker.run(lambda: 1 / 0)
        return await worker.run(lambda: "ok")

    assert asyncio.run(main()) == "ok"
    assert worker.stats()["failed"] == 1 and worker.stats()["completed"] == 1
    worker.close()


def test_examples_for_toy_models_are_toy_scenes():
    toy = pytest.importorskip("spadekit.data.toy")
    examples = make_examples(list(toy.TOY_CLASSES), (96, 64))
    assert len(examples) >= 3
    for example in examples:
        assert example.ids.shape == (64, 96)
        assert example.ids.max() < len(toy.TOY_CLASSES)
    seed = int(examples[0].name.split()[-1])
    np.testing.assert_array_equal(examples[0].ids, toy.render_scene(seed, (96, 64)).label)


def test_examples_use_classes_named_for_their_roles():
    names = ["unlabeled", "sky-other-merged", "tree-merged", "grass-merged", "river", "person"]
    roles = assign_roles(names)
    assert (roles["sky"], roles["tree"], roles["ground"], roles["water"]) == (1, 2, 3, 4)
    for example in make_examples(names, (64, 48)):
        assert example.ids.shape == (48, 64)
        assert set(np.unique(example.ids).tolist()) <= set(range(len(names)))
    lake = {e.name: e for e in make_examples(names, (64, 48))}["lake"].ids
    assert lake[0, 0] == 1 and lake[-20, 32] == 4  # sky on top, water below the mountains
    # One class only: everything is that class.
    assert all(e.ids.max() == 0 for e in make_examples(["stuff"], (16, 16)))


def _png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_upload_checks_happen_before_decoding():
    limits = StudioLimits(max_upload_bytes=10_000, max_side=100, max_pixels=5_000)
    assert read_label_image(_png(np.zeros((50, 100), np.uint8)), limits).size == (100, 50)
    with pytest.raises(UploadError) as exc:
        read_label_image(_png(np.zeros((60, 100), np.uint8)), limits)
    assert exc.value.status == 413 and "100x60" in exc.value.message
    with pytest.raises(UploadError) as exc:
        read_label_image(_png(np.zeros((8, 8, 3), np.uint8), "JPEG"), limits)
    assert exc.value.status == 415 and "JPEG" in exc.value.message
    with pytest.raises(UploadError) as exc:
        read_label_image(b"x" * 10_001, limits)
    assert exc.value.status == 413
    assert read_style_image(_png(np.zeros((8, 8, 3), np.uint8), "JPEG"), limits).mode == "RGB"
    grey = read_style_image(_png(np.zeros((8, 8), np.uint8)), limits)
    assert grey.mode == "RGB"


def test_seed_parsing():
    assert parse_seed(None) is None and parse_seed("") is None and parse_seed(" 42 ") == 42
    for bad in ("1.5", "x", "-3", str(2**63)):
        with pytest.raises(UploadError):
            parse_seed(bad)


def test_label_png_colours_and_ids():
    ids = np.array([[0, 1], [2, 255]])
    colours = np.array([[10, 20, 30], [40, 50, 60], [70, 80, 90]], np.uint8)
    decoded = np.asarray(Image.open(io.BytesIO(label_png(ids, colours))))
    np.testing.assert_array_equal(decoded, [[[10, 20, 30], [40, 50, 60]], [[70, 80, 90], [0, 0, 0]]])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(label_png(ids, None)))), ids)
    wide = np.array([[0, 300]])
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(label_png(wide, None)))), wide)
