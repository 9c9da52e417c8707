"""The studio web app: one painting page and a small JSON/PNG API around a synthesis :class:`Pipeline`.

Routes (all answers to bad input are 4xx JSON ``{"error": "...", "field": "..."}``):

- ``GET /``: the painting page (static files under ``/static``, nothing loaded from elsewhere).
- ``GET /api/model``: classes, display palette, output size, capabilities, limits, examples.
- ``POST /api/synthesize``: multipart ``labels`` (label-map PNG: ids or palette colours), optional
  ``style`` (an image; models with a style encoder) with optional ``style_labels`` (its own label
  map) and ``refine_steps`` (refine its latent first), optional ``seed`` (integer) → PNG. The
  ``X-Seed`` response header gives the seed used (a fresh one when none was sent). Models whose
  latent may differ per pixel (capability ``region_noise``) also take ``region_class`` (a class id:
  its pixels get the latent of ``region_seed``, the rest keeps ``seed``'s) and ``region_seed``
  (a fresh one when omitted; ``X-Region-Seed`` gives it).
- ``POST /api/labels``: multipart ``labels`` (+ ``format`` = ``colors`` or ``ids``) → the label map
  decoded, validated and resized to the model's size, as a colour-coded or id PNG.
- ``GET /api/examples`` and ``GET /api/examples/{index}.png``: example label maps to start from.
- ``GET /api/status``: the synthesis queue (pending, completed, mean job time).
- ``GET /api/openapi.json``: the machine-readable API description.
- Modes beyond painting, by the model's capabilities (``modes`` in ``GET /api/model``): ``POST
  /api/boxes`` and ``GET /api/bank/{index}.png`` (:mod:`spadekit.studio.box_mode`), ``POST /api/palette``
  (:mod:`spadekit.studio.palette_mode`).

One model lives in memory. Its forward passes run one at a time on a dedicated thread
(:class:`SynthesisWorker`), in arrival order, with waiting plain syntheses batched into one
generator call (dynamic batching); uploads are read and decoded on the event loop and a thread
pool, so a slow client only ever holds up itself.
"""

from __future__ import annotations

import io
import logging
import secrets
import time
from contextlib import asynccontextmanager
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spadekit.data.inputs import LABEL_FORMATS, MAX_SEED
from spadekit.data.label_maps import resize_ids
from spadekit.data.palette import Palette, colors_to_ids
from spadekit.errors import DataError, SpadekitError
from spadekit.style_refine import MAX_REFINE_STEPS
from spadekit.studio.box_mode import add_box_routes
from spadekit.studio.examples import Example, make_examples
from spadekit.studio.palette_mode import add_palette_routes
from spadekit.studio.uploads import (
    StudioLimits,
    UploadError,
    label_png,
    parse_class,
    parse_refinement,
    parse_seed,
    read_label_image,
    read_style_image,
    unused_color,
    upload_error,
)
from spadekit.studio.worker import QueueFull, SynthesisWorker, synthesis_group

if TYPE_CHECKING:
    from spadekit.inference import Pipeline
    from spadekit.methods.palette.pipeline import PalettePipeline

log = logging.getLogger("spadekit.studio")

STATIC_DIR = resources.files("spadekit.studio") / "static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
"""The page may only talk to, and load code from, the server that served it."""


class PayloadTooLarge(Exception):
    """The request body grew past the upload limit while it was being read."""


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes``: at once when ``Content-Length`` says so, otherwise as
    soon as the streamed body passes the limit (chunked uploads cannot declare their size)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = JSONResponse(
                {"error": f"request body of {int(declared)} bytes is more than the limit of {self.max_bytes}"},
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(f"request body is more than the limit of {self.max_bytes} bytes")
            return message

        await self.app(scope, limited_receive, send)


class SecurityHeadersMiddleware:
    """Add ``nosniff`` and the content security policy to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _ in headers}
                if b"x-content-type-options" not in names:
                    headers.append((b"x-content-type-options", b"nosniff"))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _error(status: int, message: str, field: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(UploadError(status, message, field).to_json(), status_code=status, headers=headers)


async def _read_form(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The multipart form as {name: bytes (files) or str}, refusing anything unexpected."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise UploadError(415, f"send multipart/form-data (got {content_type or 'no content type'})")
    try:
        form = await request.form(max_files=len(allowed), max_fields=len(allowed) + 2)
    except StarletteHTTPException as exc:  # malformed multipart, too many parts
        raise UploadError(400, f"malformed form: {exc.detail}") from None
    try:
        values: dict[str, Any] = {}
        for name, value in form.multi_items():
            if name not in allowed:
                raise UploadError(400, f"{name}: unknown field (expected {', '.join(allowed)})", name)
            if name in values:
                raise UploadError(400, f"{name}: sent more than once", name)
            values[name] = await value.read() if isinstance(value, UploadFile) else value
        return values
    finally:
        await form.close()


def _file_field(values: dict[str, Any], name: str, required: bool) -> bytes | None:
    value = values.get(name)
    if value is None:
        if required:
            raise UploadError(400, f"{name}: missing (send it as a file field)", name)
        return None
    if isinstance(value, str):
        if value == "" and not required:
            return None
        raise UploadError(400, f"{name}: must be a file upload, not a text field", name)
    return value


SYNTHESIZE_FORM = {
    "labels": {"type": "string", "format": "binary",
               "description": f"label map ({'/'.join(LABEL_FORMATS)}; not JPEG/WebP): class ids or palette colours"},
    "style": {"type": "string", "format": "binary", "description": "style image (models with a style encoder)"},
    "style_labels": {"type": "string", "format": "binary",
                     "description": "with refine_steps: the style image's own label map (same size as the style image)"},
    "refine_steps": {"type": "integer", "minimum": 0, "maximum": MAX_REFINE_STEPS,
                     "description": "refine the style's latent for this many steps against style_labels first "
                     "(seconds per request on a CPU); omitted: 0, the encoder's latent"},
    "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED, "description": "latent seed; omitted: a fresh one (X-Seed header)"},
    "region_class": {
        "type": "integer",
        "minimum": 0,
        "description": "models with capability region_noise: the class whose pixels get the latent of region_seed",
    },
    "region_seed": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_SEED,
        "description": "latent seed inside region_class; omitted: a fresh one (X-Region-Seed header)",
    },
}
LABELS_FORM = {
    "labels": SYNTHESIZE_FORM["labels"],
    "format": {"type": "string", "enum": ["colors", "ids"], "default": "colors"},
}
PNG_RESPONSE: dict = {200: {"content": {"image/png": {}}, "description": "a PNG"}}


def _form_schema(fields: dict) -> dict:
    """OpenAPI request body for a multipart form (the endpoints parse it themselves, to control errors)."""
    schema = {"type": "object", "properties": fields, "required": ["labels"]}
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": schema}}}}


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def create_app(
    pipeline: "Pipeline",
    *,
    model_name: str = "model",
    limits: StudioLimits | None = None,
    max_pending: int = 256,
    examples: list[Example] | None = None,
    palette_pipeline: "PalettePipeline | None" = None,
    max_batch: int = 8,
    batch_wait_ms: float = 5.0,
) -> FastAPI:
    """Build the studio app around one loaded pipeline.

    Args:
        pipeline: the model to serve; only this app's worker thread calls it.
        model_name: shown on the page and in ``GET /api/model``.
        limits: upload size and pixel limits.
        max_pending: syntheses allowed to wait or run at once; more get 503 with ``Retry-After``.
        examples: example label maps; default :func:`make_examples` for the model's classes.
        palette_pipeline: for a model that makes layouts from class proportions, its palette pipeline (whose
            image stage ``pipeline`` is): adds the palette mode. :func:`~spadekit.studio.modes.open_studio_model`
            loads both.
        max_batch, batch_wait_ms: dynamic batching of waiting plain syntheses (label map + seed)
            into one generator call: at most ``max_batch`` requests, waiting at most
            ``batch_wait_ms`` for a batch to fill (1: one request per call).
    """
    limits = limits or StudioLimits()
    worker = SynthesisWorker(max_pending=max_pending, max_batch=max_batch, max_wait_s=batch_wait_ms / 1000)
    plain_syntheses = synthesis_group(pipeline)
    # The pipeline's palette is the one it decodes colour-coded label maps with: the model's colours,
    # or a generated distinct colour per class when the model has none.
    palette = pipeline.palette
    num_classes = int(pipeline.config.model.label_nc)
    class_names = (list(pipeline.class_names) + [f"class {i}" for i in range(len(pipeline.class_names), num_classes)])[:num_classes]
    colors = np.asarray(palette.colors, dtype=np.uint8)[:num_classes]
    width, height = (int(v) for v in pipeline.size)
    allow_dontcare = bool(pipeline.config.model.contain_dontcare)
    # Models with a don't-care channel get a paintable "don't care" colour: the palette's own, or
    # one that no class uses (then the studio decodes colour-coded uploads itself, to know it).
    dontcare_color = None
    if allow_dontcare:
        dontcare_color = tuple(palette.dontcare) if palette.dontcare is not None else unused_color(colors)
    own_palette = Palette(tuple(class_names), colors, dontcare_color) if dontcare_color and palette.dontcare is None else None
    has_encoder = bool(pipeline.has_encoder)
    multimodal = bool(pipeline.uses_latent)
    # Per-region resampling follows from the generator (a latent that may differ per pixel), never
    # from the method's name.
    region_noise = bool(getattr(pipeline, "spatial_latent", False))
    if examples is None:
        examples = make_examples(class_names, (width, height))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        worker.close()

    app = FastAPI(
        title="spadekit studio",
        description="Paint a label map and turn it into a photo with a SPADE-family model.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's interactive docs load their scripts from a CDN; the schema is enough
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.worker = worker
    app.state.pipeline = pipeline
    app.add_middleware(BodyLimitMiddleware, max_bytes=limits.max_upload_bytes)
    app.add_middleware(SecurityHeadersMiddleware)

    @app.exception_handler(UploadError)
    async def _upload_error(_request: Request, exc: UploadError) -> JSONResponse:
        return JSONResponse(exc.to_json(), status_code=exc.status)

    @app.exception_handler(QueueFull)
    async def _busy(_request: Request, exc: QueueFull) -> JSONResponse:
        return _error(503, f"busy: {exc}; retry shortly", headers={"Retry-After": "1"})

    @app.exception_handler(PayloadTooLarge)
    async def _too_large(_request: Request, exc: PayloadTooLarge) -> JSONResponse:
        return _error(413, str(exc), headers={"Connection": "close"})

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "index.html"), headers={"Cache-Control": "no-cache"})

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> FileResponse:
        return FileResponse(str(STATIC_DIR / "favicon.svg"), media_type="image/svg+xml")

    model_info = {
        "name": model_name,
        "classes": class_names,
        "palette": colors.astype(int).tolist(),
        "size": [width, height],
        "has_encoder": has_encoder,
        "capabilities": {
            "style_image": has_encoder,
            "seed": multimodal,
            "dontcare": allow_dontcare,
            "region_noise": region_noise,
        },
        "dontcare_color": [int(c) for c in dontcare_color] if dontcare_color is not None else None,
        "limits": limits.to_json(),
        "examples": [{"name": e.name, "url": f"/api/examples/{i}.png"} for i, e in enumerate(examples)],
    }

    @app.get("/api/model")
    async def get_model() -> dict:
        """Classes (index = id), their display colours, the output size (width, height) and what the
        model can do: ``style_image`` (has a style encoder), ``seed`` (outputs vary with the seed),
        ``region_noise`` (one class's pixels can be resampled with ``region_class``/``region_seed``);
        ``modes``: the page's modes (``boxes``, ``palette``, ``layout``), the default first, and
        ``mode_info``: per mode beyond ``layout``, what the page needs (box classes, palette classes)."""
        return model_info

    @app.get("/api/status")
    async def get_status() -> dict:
        """The synthesis queue."""
        return worker.stats()

    @app.get("/api/examples")
    async def list_examples() -> list[dict]:
        return model_info["examples"]

    @app.get("/api/examples/{index}.png")
    async def get_example(index: int, format: str = "colors") -> Response:
        """An example label map as a colour-coded PNG (``format=ids``: an id PNG)."""
        if not 0 <= index < len(examples):
            raise UploadError(404, f"no example {index} (there are {len(examples)})")
        if format not in ("colors", "ids"):
            raise UploadError(400, "format: use colors or ids", "format")
        data = label_png(examples[index].ids, colors if format == "colors" else None, dontcare_color)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})

    def decode_labels(data: bytes, field: str = "labels", resize: bool = True) -> torch.Tensor:
        """Upload → int64 ids validated against the model, at the model's size (``resize``) or
        as sent."""
        image: Any = read_label_image(data, limits, field)
        try:
            if own_palette is not None and image.mode in ("RGB", "RGBA"):
                rgb = np.ascontiguousarray(np.asarray(image.convert("RGB")))
                image = torch.from_numpy(colors_to_ids(rgb, own_palette, source=field).astype(np.int64))
            ids = pipeline.labels_from_image(image, source=field)
        except DataError as exc:
            hint = " (GET /api/model lists the class colours)" if "palette" in str(exc) else ""
            raise upload_error(type(exc)(f"{exc}{hint}"), field) from None
        return resize_ids(ids, (width, height)) if resize else ids

    def region_fields(values: dict[str, Any]) -> tuple[int | None, int | None]:
        """``region_class`` / ``region_seed`` checked against the model: (None, None) when unused."""
        sent = [name for name in ("region_class", "region_seed") if str(values.get(name) or "").strip()]
        if not sent:
            return None, None
        if not region_noise:
            raise UploadError(
                422,
                f"{sent[0]}: this model cannot resample one region (its latent is one vector per image, or it has "
                "none; GET /api/model shows capabilities.region_noise)",
                sent[0],
            )
        region_class = parse_class(values.get("region_class"), class_names, "region_class")
        region_seed = parse_seed(values.get("region_seed"), "region_seed")
        if region_class is None:
            raise UploadError(400, "region_seed: send region_class too (the class whose pixels get the new latent)", "region_seed")
        return region_class, region_seed

    @app.post("/api/labels", openapi_extra=_form_schema(LABELS_FORM), responses=PNG_RESPONSE)
    async def convert_labels(request: Request) -> Response:
        """Validate an uploaded label map and return it at the model's size, colour-coded
        (``format=colors``, the default) or as ids (``format=ids``)."""
        values = await _read_form(request, ("labels", "format"))
        data = _file_field(values, "labels", required=True)
        kind = str(values.get("format") or "colors")
        if kind not in ("colors", "ids"):
            raise UploadError(400, "format: use colors or ids", "format")
        ids = await anyio.to_thread.run_sync(decode_labels, data)
        png = await anyio.to_thread.run_sync(label_png, ids.numpy(), colors if kind == "colors" else None, dontcare_color)
        return Response(png, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/synthesize", openapi_extra=_form_schema(SYNTHESIZE_FORM), responses=PNG_RESPONSE)
    async def synthesize(request: Request) -> Response:
        """multipart ``labels`` (+ ``style``, ``style_labels``, ``refine_steps``, ``seed``,
        ``region_class``, ``region_seed``) → PNG of the model's size."""
        values = await _read_form(request, ("labels", "style", "style_labels", "refine_steps", "seed", "region_class",
                                            "region_seed"))
        label_data = _file_field(values, "labels", required=True)
        style_data = _file_field(values, "style", required=False)
        style_label_data = _file_field(values, "style_labels", required=False)
        for name in ("seed", "region_class", "region_seed", "refine_steps"):
            if isinstance(values.get(name), bytes):
                raise UploadError(400, f"{name}: must be a text field holding an integer, not a file", name)
        seed = parse_seed(values.get("seed"))
        refine_steps = parse_refinement(values.get("refine_steps"), style_data is not None, style_label_data is not None)
        region_class, region_seed = region_fields(values)
        if style_data is not None and not has_encoder:
            raise UploadError(422, "style: this model has no style encoder; send a seed instead", "style")
        ids = await anyio.to_thread.run_sync(decode_labels, label_data)
        style = await anyio.to_thread.run_sync(partial(read_style_image, style_data, limits)) if style_data else None
        style_ids = await anyio.to_thread.run_sync(decode_labels, style_label_data, "style_labels", False) if style_label_data else None
        region = None
        if region_class is not None:
            region = (ids == region_class).to(torch.uint8)
            if not bool(region.any()):
                name = class_names[region_class]
                raise UploadError(422, f"region_class: class {region_class} ({name}) has no pixels in this label map", "region_class")
            if region_seed is None:
                region_seed = secrets.randbelow(2**31)
        if seed is None:
            seed = secrets.randbelow(2**31)

        def job():
            start = time.perf_counter()
            images = pipeline(ids, style=style, seed=seed, num_samples=1, output="pil", region=region, region_seed=region_seed,
                              style_labels=style_ids, refine_steps=refine_steps)
            return images[0], time.perf_counter() - start

        try:
            if style is None and region is None:  # batched with other waiting plain requests: the same image as alone
                image, seconds = await worker.run_batched(plain_syntheses, (ids, seed))
            else:
                image, seconds = await worker.run(job)
        except QueueFull as exc:
            return _error(503, f"busy: {exc}; retry shortly", headers={"Retry-After": "1"})
        except SpadekitError as exc:
            return _error(422, str(exc))
        except Exception as exc:  # a bug or an out-of-memory: answer in JSON, keep serving
            log.exception("synthesis failed")
            return _error(500, f"synthesis failed: {type(exc).__name__}: {exc}")
        png = await anyio.to_thread.run_sync(_png, image)
        headers = {"X-Seed": str(seed), "X-Synthesis-Ms": f"{1000 * seconds:.1f}", "Cache-Control": "no-store"}
        if region is not None:
            headers.update({"X-Region-Class": str(region_class), "X-Region-Seed": str(region_seed)})
        return Response(png, media_type="image/png", headers=headers)

    # The page's modes follow what the model can do, the default first; painting always works.
    mode_info: dict[str, dict] = {}
    if getattr(pipeline, "takes_boxes", False):
        mode_info["boxes"] = add_box_routes(app, pipeline, worker, colors, dontcare_color)
    if palette_pipeline is not None:
        mode_info["palette"] = add_palette_routes(app, palette_pipeline, worker, colors, dontcare_color)
    model_info["modes"] = [*mode_info, "layout"]
    model_info["mode_info"] = mode_info
    return app
