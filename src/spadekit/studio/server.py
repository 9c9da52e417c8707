"""Running the studio app with uvicorn: in the foreground (the CLI) or on a background thread
(tests, benchmarks, the screenshot script)."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from typing import Iterator

import uvicorn
from fastapi import FastAPI

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

# Flags for driving Debian's Chromium headless (tests, screenshots) on a machine with no network
# access: without the background-networking ones it keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    # One process, one event loop: the single model instance and its worker thread live in it.
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, workers=1, backlog=2048, timeout_keep_alive=30)


def serve(app: FastAPI, host: str = "127.0.0.1", port: int = 7860, log_level: str = "info") -> None:
    """Serve until interrupted (Ctrl+C)."""
    uvicorn.Server(_config(app, host, port, log_level)).run()


@contextmanager
def background_server(app: FastAPI, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Serve ``app`` on a thread; yields its base URL (``port=0`` picks a free port) and stops it on exit."""
    server = uvicorn.Server(_config(app, host, port, log_level))
    thread = threading.Thread(target=server.run, name="spadekit-studio-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the studio server did not start on {host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()
    url_host = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    try:
        yield f"http://{url_host}:{bound[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
