"""spadekit: semantic image synthesis with SPADE (Park et al., CVPR 2019)."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_model", "Pipeline", "PalettePipeline", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``import spadekit`` (and the CLI's --help) does not import torch.
    if name == "load_model":
        from spadekit.release import load_model

        return load_model
    if name == "Pipeline":
        from spadekit.inference import Pipeline

        return Pipeline
    if name == "PalettePipeline":  # class proportions -> layouts -> photos (models with the palette capability)
        from spadekit.methods.palette.pipeline import PalettePipeline

        return PalettePipeline
    raise AttributeError(f"module 'spadekit' has no attribute {name!r}")
