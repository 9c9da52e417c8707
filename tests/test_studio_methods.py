"""The studio serves CLADE and ASAPNet models like SPADE ones (its API goes through ``Pipeline``)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from spadekit.bench import random_model
from spadekit.inference import Pipeline
from spadekit.methods import get_method
from spadekit.studio import create_app
from spadekit.studio.server import background_server


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name", ["clade", "asapnet"])
def test_studio_paints_with_the_method(name: str) -> None:
    method = get_method(name)
    model = random_model(method.toy_preset, list(method.tiny_overrides))
    app = create_app(Pipeline(model), model_name=name)
    ids = np.zeros((64, 64), np.uint8)
    ids[32:] = 5
    other = ids.copy()
    other[:, :20] = 3
    with background_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        info = client.get("/api/model").json()
        assert info["size"] == [64, 64] and info["classes"][5] == "grass"
        assert info["capabilities"]["style_image"] is False
        answers = [client.post("/api/synthesize", files={"labels": ("l.png", png(m), "image/png")}, data={"seed": "1"})
                   for m in (ids, ids, other)]
    assert all(r.status_code == 200 and r.headers["content-type"] == "image/png" for r in answers)
    first, again, changed = (np.asarray(Image.open(io.BytesIO(r.content))) for r in answers)
    assert first.shape == (64, 64, 3) and first.std() > 5
    assert np.array_equal(first, again)
    assert not np.array_equal(first, changed), "another label map must give another image"
