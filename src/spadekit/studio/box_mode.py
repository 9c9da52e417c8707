"""The studio's boxes mode, for models that synthesize a scene from labelled object boxes
(:attr:`Pipeline.takes_boxes`, e.g. BachGAN): the page draws boxes, the server runs
:meth:`Pipeline.from_boxes` and says which retrieved layouts it used, so the user can pick others.

Routes:

- ``POST /api/boxes``: JSON ``{"boxes": [{"class": name or id, "box": [x0, y0, x1, y1]}, ...],
  "width": W, "height": H, "seed": s, "choose": [bank entries], "candidates": n}`` (only ``boxes``
  is required; ``width``/``height`` give the canvas the boxes are drawn on, default the model's size:
  the box-file format of ``spadekit synthesize --boxes``) → JSON with the photo (a PNG ``data:`` URL),
  the seed, the boxes at the model's size, the bank entries the photo used and the best-ranked ones.
- ``GET /api/bank/{index}.png``: bank entry ``index`` as a colour-coded layout at the model's size.

Boxes are checked by the method's own parser (the one that reads box files), so the studio and the
command line refuse the same boxes with the same message.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from spadekit.errors import DataError
from spadekit.studio.modes import JSON_RESPONSE, json_body_schema, json_seed, png_bytes, png_data_url, read_json, run_job
from spadekit.studio.uploads import UploadError, label_png, upload_error
from spadekit.studio.worker import SynthesisWorker

if TYPE_CHECKING:
    from spadekit.inference import Pipeline

MAX_BOXES = 256
"""Most boxes one request may hold."""
MAX_CANDIDATES = 64
"""Most ranked bank entries one answer lists."""
DEFAULT_CANDIDATES = 8

BOXES_FORM = {
    "boxes": {"type": "array", "description": 'the boxes, drawn in order: [{"class": "car", "box": [x0, y0, x1, y1]}, ...] '
              "(pixels of the canvas, x1/y1 exclusive)", "maxItems": MAX_BOXES},
    "width": {"type": "integer", "minimum": 1, "description": "canvas width of the boxes (default: the model's)"},
    "height": {"type": "integer", "minimum": 1, "description": "canvas height of the boxes (default: the model's)"},
    "seed": {"type": "integer", "minimum": 0, "description": "latent seed (models with a latent); omitted: a fresh one"},
    "choose": {"type": "array", "items": {"type": "integer"}, "description": "bank entries to use instead of the best-ranked"},
    "candidates": {"type": "integer", "minimum": 1, "maximum": MAX_CANDIDATES, "default": DEFAULT_CANDIDATES,
                   "description": "how many ranked bank entries the answer lists"},
}


def _int_list(value: Any, field: str, limit: int) -> list[int] | None:
    if value is None:
        return None
    if not (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise UploadError(400, f"{field}: must be a list of bank entry numbers, got {json.dumps(value)[:60]}", field)
    if len(value) > limit:
        raise UploadError(400, f"{field}: {len(value)} entries; at most {limit}", field)
    return list(value)


def _count(value: Any, field: str, default: int, top: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise UploadError(400, f"{field}: must be an integer in 1..{top}, got {json.dumps(value)[:40]}", field)
    return value


def add_box_routes(app: FastAPI, pipeline: "Pipeline", worker: SynthesisWorker, colors: np.ndarray,
                   dontcare_color: tuple[int, int, int] | None) -> dict:
    """Add the boxes mode's routes to ``app``; returns what ``GET /api/model`` says about the mode.

    Raises DataError when the model has no memory bank to retrieve backgrounds from.
    """
    conditioner = pipeline.box_conditioner
    try:
        memory, _ = conditioner.bank()
    except DataError as exc:
        raise DataError(f"the studio's boxes mode needs the model's own memory bank: {exc}") from None
    width, height = (int(v) for v in pipeline.size)
    k = int(conditioner.k)
    version = memory.content_hash[:12]
    names = conditioner.class_names + [f"class {i}" for i in range(len(conditioner.class_names), conditioner.channels)]

    def entry(match) -> dict:
        return {"index": match.index, "name": match.name, "score": float(match.score),
                "url": f"/api/bank/{match.index}.png?v={version}"}

    def parse(document: dict) -> list:
        try:
            return conditioner.parse(document, source="boxes")
        except DataError as exc:
            raise upload_error(exc, "boxes") from None

    @app.post("/api/boxes", openapi_extra=json_body_schema(BOXES_FORM, ("boxes",)), responses=JSON_RESPONSE)
    async def synthesize_boxes(request: Request) -> JSONResponse:
        """Boxes (+ seed, chosen bank entries) → the photo and the retrieved layouts behind it."""
        values = await read_json(request, tuple(BOXES_FORM))
        if "boxes" not in values:
            raise UploadError(400, 'boxes: missing (a list of {"class": name, "box": [x0, y0, x1, y1]})', "boxes")
        if isinstance(values["boxes"], list) and len(values["boxes"]) > MAX_BOXES:
            raise UploadError(400, f"boxes: {len(values['boxes'])} boxes; at most {MAX_BOXES}", "boxes")
        boxes = parse({key: values[key] for key in ("width", "height", "boxes") if key in values})
        seed = json_seed(values.get("seed"))
        choose = _int_list(values.get("choose"), "choose", k)
        candidates = _count(values.get("candidates"), "candidates", DEFAULT_CANDIDATES, MAX_CANDIDATES)
        if seed is None:
            seed = secrets.randbelow(2**31)

        def job():
            start = time.perf_counter()
            result = pipeline.from_boxes(boxes, choose=choose, candidates=candidates, seed=seed, output="pil")
            return result, time.perf_counter() - start

        result, seconds = await run_job(worker, job, fields=("choose",))
        png = await anyio.to_thread.run_sync(png_bytes, result.images[0])
        return JSONResponse({
            "image": png_data_url(png),
            "seed": seed,
            "size": [width, height],
            "synthesis_ms": round(1000 * seconds, 1),
            "boxes": [{"class": names[b.class_id], "class_id": b.class_id, "box": [b.x0, b.y0, b.x1, b.y1]} for b in result.boxes],
            "used": [entry(m) for m in result.used[0]],
            "candidates": [entry(m) for m in result.candidates],
            "chosen": choose is not None,
        }, headers={"Cache-Control": "no-store", "X-Seed": str(seed)})

    @app.get("/api/bank/{index}.png", responses={200: {"content": {"image/png": {}}, "description": "a PNG"}})
    async def bank_layout(index: int) -> Response:
        """Memory-bank entry ``index`` as a colour-coded layout at the model's size."""
        if not 0 <= index < len(memory):
            raise UploadError(404, f"no bank entry {index} (the bank has entries 0..{len(memory) - 1})")
        ids = memory.layouts([index], height, width)[0].numpy()
        png = await anyio.to_thread.run_sync(label_png, ids, colors, dontcare_color)
        # The URL carries the bank's content hash, so a cached picture is never another bank's.
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=86400, immutable"})

    return {
        "classes": [{"id": int(c), "name": name} for c, name in conditioner.classes],
        "num_retrieved": k,
        "bank_size": len(memory),
        "candidates": DEFAULT_CANDIDATES,
    }
