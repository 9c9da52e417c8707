"""What the studio's modes share: opening a model with every mode it supports, and the JSON requests
and answers of the mode endpoints (``POST /api/boxes``, ``POST /api/palette``).

The page's modes follow the model's capabilities, never its method's name:

- ``layout`` (every model): paint a label map;
- ``boxes`` (models that synthesize from object boxes, :attr:`Pipeline.takes_boxes`): draw labelled boxes
  (:mod:`spadekit.studio.box_mode`);
- ``palette`` (models with the ``"palette"`` capability: class proportions → layout): sliders per class
  (:mod:`spadekit.studio.palette_mode`).
"""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import torch
from fastapi import Request

from spadekit.errors import SpadekitError
from spadekit.studio.uploads import UploadError, parse_seed
from spadekit.studio.worker import QueueFull, SynthesisWorker

if TYPE_CHECKING:
    from spadekit.inference import Pipeline
    from spadekit.methods.palette.pipeline import PalettePipeline

T = TypeVar("T")
log = logging.getLogger("spadekit.studio")


def open_studio_model(
    model: str | Path, device: str | torch.device = "cpu", batch_size: int = 8
) -> tuple["Pipeline", "PalettePipeline | None"]:
    """Load ``model`` (a release folder or a bundled name) for the studio: the layout→image
    :class:`Pipeline` the page paints with, and, for a model that makes layouts from class proportions,
    the :class:`PalettePipeline` whose image stage that pipeline is (else None). ``batch_size``: most
    images per generator call (the studio's dynamic batch)."""
    from spadekit.inference import Pipeline
    from spadekit.release import load_model

    loaded = load_model(model, device=device)
    if "palette" in loaded.method.capabilities:
        from spadekit.methods.palette.pipeline import PalettePipeline

        palette = PalettePipeline(loaded, device=device)
        if palette.image is None:
            loaded.method.image_stage(loaded)  # raises why there is no image model
        return palette.image, palette
    return Pipeline(loaded, device=device, batch_size=batch_size), None


async def read_json(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The request body as a JSON object whose keys are all in ``allowed``; UploadError otherwise."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        raise UploadError(415, f"send application/json (got {content_type or 'no content type'})")
    body = await request.body()
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UploadError(400, f"the body is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UploadError(400, f"the body must be a JSON object with the fields {', '.join(allowed)}")
    for name in data:
        if name not in allowed:
            raise UploadError(400, f"{name}: unknown field (expected {', '.join(allowed)})", name)
    return data


def json_seed(value: Any, field: str = "seed") -> int | None:
    """A JSON seed (an integer, or a string of one; null: none) checked by the command line's rule."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise UploadError(400, f"{field}: must be an integer, got {json.dumps(value)[:40]}", field)
    return parse_seed(str(value), field)


def json_flag(value: Any, field: str, default: bool) -> bool:
    """A JSON boolean field (missing or null: ``default``)."""
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UploadError(400, f"{field}: must be true or false, got {json.dumps(value)[:40]}", field)
    return value


def png_data_url(png: bytes) -> str:
    """A PNG as a ``data:`` URL (the page shows it as it is; the CSP allows ``data:`` images)."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def json_body_schema(properties: dict, required: tuple[str, ...] = ()) -> dict:
    """OpenAPI request body of a JSON endpoint (the endpoints parse it themselves, to control errors)."""
    schema: dict = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


JSON_RESPONSE: dict = {200: {"content": {"application/json": {}}, "description": "JSON"}}


def png_bytes(image: Any) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


async def run_job(worker: SynthesisWorker, job: Callable[[], T], fields: tuple[str, ...] = ()) -> T:
    """Run ``job`` on the synthesis thread. A spadekit error is the client's (422; its field is the
    message's leading ``name:`` when that is one of ``fields``); anything else is a bug or an
    out-of-memory (500, and the server keeps serving). :class:`QueueFull` passes through (503)."""
    try:
        return await worker.run(job)
    except QueueFull:
        raise
    except SpadekitError as exc:
        prefix = str(exc).split(":", 1)[0]
        raise UploadError(422, str(exc), prefix if prefix in fields else None) from None
    except Exception as exc:
        log.exception("synthesis failed")
        raise UploadError(500, f"synthesis failed: {type(exc).__name__}: {exc}") from None
