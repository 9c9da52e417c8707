"""The studio's palette mode, for models that make a layout from class proportions (the ``"palette"``
capability, e.g. Semantic Palette): the page sets a share per class (or samples a palette from the
model's mixture), the server runs :class:`~spadekit.methods.palette.pipeline.PalettePipeline` and sends
back the layout, which the page then paints on like any label map.

Route:

- ``POST /api/palette``: JSON ``{"proportions": {"sky": 0.4, ...} | [one share per class] | "sky=0.4,road=0.3",
  "seed": s, "photo": true}`` → JSON: the layout as a colour-coded PNG ``data:`` URL at the image
  model's size, the requested (normalised) and achieved proportions, a notice when the proportions were
  rescaled, the seed, and the photo (a PNG ``data:`` URL; ``"photo": false`` leaves it out). Without
  ``proportions`` (or null) the palette is drawn from the model's mixture with ``seed``.

Proportions are checked by the palette checker the command line uses (unknown classes, negative values,
totals far from 1); the seed by the command line's rule. Layout and photo of a seed are those of
``PalettePipeline(model)(proportions, seed=seed)``.
"""

from __future__ import annotations

import json
import math
import secrets
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from spadekit.studio.modes import JSON_RESPONSE, json_body_schema, json_flag, json_seed, png_bytes, png_data_url, read_json, run_job
from spadekit.errors import SpadekitError
from spadekit.studio.uploads import UploadError, label_png, upload_error
from spadekit.studio.worker import SynthesisWorker

if TYPE_CHECKING:
    from spadekit.methods.palette.pipeline import PalettePipeline

PALETTE_FORM = {
    "proportions": {"description": 'the share of each class: {"sky": 0.4, "road": 0.3}, a list with one share per class, '
                    'or the text "sky=0.4,road=0.3"; they must sum to about 1 (null or omitted: sampled from the model)'},
    "seed": {"type": "integer", "minimum": 0, "description": "seed of the layout noise (and the photo, and a sampled palette)"},
    "photo": {"type": "boolean", "default": True, "description": "also draw the photo"},
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_proportions_shape(value: Any) -> Any:
    """The JSON ``proportions`` field in a form the palette checker reads (it checks the values);
    UploadError for JSON of the wrong shape."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict) and all(_number(v) for v in value.values()):
        return value
    if isinstance(value, list) and all(_number(v) for v in value):
        return value
    raise UploadError(
        400,
        'proportions: expected {"class name": share, ...}, a list of shares (one per class) or the text '
        f'"sky=0.4,road=0.3", got {json.dumps(value)[:60]}',
        "proportions",
    )


def add_palette_routes(app: FastAPI, palette: "PalettePipeline", worker: SynthesisWorker, colors: np.ndarray,
                       dontcare_color: tuple[int, int, int] | None) -> dict:
    """Add the palette mode's route to ``app``; returns what ``GET /api/model`` says about the mode."""
    width, height = (int(v) for v in palette.size)

    @app.post("/api/palette", openapi_extra=json_body_schema(PALETTE_FORM), responses=JSON_RESPONSE)
    async def generate_layout(request: Request) -> JSONResponse:
        """Class proportions (or none: sampled) → a layout, its proportions and its photo."""
        values = await read_json(request, tuple(PALETTE_FORM))
        proportions = check_proportions_shape(values.get("proportions"))
        seed = json_seed(values.get("seed"))
        photo = json_flag(values.get("photo"), "photo", True)
        if proportions is None and not palette.has_mixture:
            raise UploadError(422, "proportions: missing, and this model has no fitted palette mixture to sample them from "
                              "(give the share of each class)", "proportions")
        if proportions is not None:
            # The checker's verdict before the model queue: a bad palette costs no synthesis.
            try:
                palette.check(proportions)
            except SpadekitError as exc:
                raise upload_error(exc, "proportions") from None
        if seed is None:
            seed = secrets.randbelow(2**31)

        def job():
            start = time.perf_counter()
            result = palette(proportions, num_samples=1, seed=seed, images=photo, output="pil")
            return result, time.perf_counter() - start

        result, seconds = await run_job(worker, job, fields=("proportions", "seed"))
        labels = await anyio.to_thread.run_sync(label_png, result.labels[0].numpy(), colors, dontcare_color)
        image = await anyio.to_thread.run_sync(png_bytes, result.images[0]) if photo else None
        return JSONResponse({
            "labels": png_data_url(labels),
            "image": png_data_url(image) if image is not None else None,
            "seed": seed,
            "size": [width, height],
            "sampled": proportions is None,
            "proportions": [_share(v) for v in result.palettes[0].tolist()],
            "achieved": [_share(v) for v in result.achieved[0].tolist()],
            "notice": result.notice,
            "synthesis_ms": round(1000 * seconds, 1),
        }, headers={"Cache-Control": "no-store", "X-Seed": str(seed)})

    return {
        "classes": list(palette.class_names),
        "sample": bool(palette.has_mixture),
        "layout_size": [int(v) for v in palette.layout_size],
    }


def _share(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0
