"""The studio: paint a label map in the browser and watch a SPADE model turn it into a photo.

``create_app(pipeline)`` builds the FastAPI app (the page and the JSON/PNG API, see
:mod:`spadekit.studio.app`); ``open_studio_model`` loads a model with every mode it supports (boxes,
palette); ``serve`` / ``background_server`` run it with uvicorn.
"""

from __future__ import annotations

from spadekit.studio.app import create_app
from spadekit.studio.modes import open_studio_model
from spadekit.studio.server import background_server, serve
from spadekit.studio.uploads import StudioLimits

__all__ = ["create_app", "open_studio_model", "serve", "background_server", "StudioLimits"]
