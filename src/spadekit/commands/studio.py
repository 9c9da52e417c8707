"""``spadekit studio``: paint a label map in the browser and watch the model turn it into a photo."""

from __future__ import annotations

import argparse

from spadekit.commands._options import add_device_option


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "studio",
        help="open the painting studio (a local web page) for a model",
        description="Serve the studio: a web page where you paint a label map with the model's classes and see "
        "the synthesized photo update after every stroke, plus a JSON/PNG API (POST /api/synthesize, "
        "GET /api/model). Models that synthesize from object boxes (BachGAN) add a boxes mode; models that make "
        "layouts from class proportions (Semantic Palette) add a palette mode with a slider per class. Everything is served locally; nothing is loaded from the internet.",
    )
    parser.add_argument("--model", default="toy", help="release model directory or bundled model name (default: toy)")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens it to your network)",
    )
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    add_device_option(parser)
    parser.add_argument(
        "--max-upload-mb", type=float, default=16.0, help="largest request body accepted, in MiB (default 16)"
    )
    parser.add_argument(
        "--max-side", type=int, default=4096, help="largest width or height of an uploaded image, in pixels (default 4096; "
        "the other picture limits are the command line's: 8 pixels a side at least, 8:1 at most)"
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        default=256,
        help="syntheses allowed to wait at once; more are answered 503 'busy' (default 256)",
    )
    parser.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="waiting syntheses run together in one generator call, at most this many (default 8; 1: one at a time)",
    )
    parser.add_argument(
        "--batch-wait-ms", type=float, default=5.0, help="how long a batch that is not full waits for more requests (default 5)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from spadekit.commands._options import pick_device
    from spadekit.errors import ConfigError
    from spadekit.studio import StudioLimits, create_app, open_studio_model, serve
    from spadekit.studio.server import LOOPBACK_HOSTS

    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port {args.port}: must lie in 0..65535")
    if args.max_upload_mb <= 0 or args.max_side < 1 or args.max_queue < 1 or args.max_batch < 1 or args.batch_wait_ms < 0:
        raise ConfigError("--max-upload-mb, --max-side, --max-queue and --max-batch must be positive (--batch-wait-ms >= 0)")
    device = pick_device(args.device)
    _check_port_free(args.host, args.port)
    pipeline, palette = open_studio_model(args.model, device=device, batch_size=args.max_batch)
    limits = StudioLimits(
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024), max_side=args.max_side, max_pixels=args.max_side**2,
        min_side=min(StudioLimits.min_side, args.max_side),
    )
    app = create_app(
        pipeline, model_name=str(args.model), limits=limits, max_pending=args.max_queue,
        max_batch=args.max_batch, batch_wait_ms=args.batch_wait_ms, palette_pipeline=palette,
    )
    if args.host not in LOOPBACK_HOSTS:
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the studio")
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"spadekit studio: http://{shown}:{args.port}/  (model {args.model}; Ctrl+C to stop)")
    serve(app, host=args.host, port=args.port)
    return 0


def _check_port_free(host: str, port: int) -> None:
    """Fail early with a plain message (uvicorn would log a traceback-like error and exit)."""
    import socket

    from spadekit.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"--host {host}: not an address of this machine") from None
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror}); pick another port") from None
