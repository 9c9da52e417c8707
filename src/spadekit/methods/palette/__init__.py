"""Semantic Palette (CVPR 2021): class proportions → a semantic layout → (any spadekit layout→image model) a photo.

Modules: :mod:`.sampler` (palette mixture), :mod:`.layout_generator`, :mod:`.layout_discriminator`,
:mod:`.activation` (proportion-aware activation), :mod:`.layers` (equalized layers, pixel norm),
:mod:`.layouts` (softening, discretisation, proportions), :mod:`.losses`, :mod:`.objective`,
:mod:`.schedule` (progressive schedule), :mod:`.convert` (official checkpoints),
:mod:`.proportions` (checking user palettes); the method itself: :mod:`.method` (config section,
registration), :mod:`.parts` (schedule and mixture parts), :mod:`.training` (the trainer's objective),
:mod:`.official` (the ``semantic-palette`` checkpoint format), :mod:`.pipeline` (proportions → layout
→ photo), :mod:`.evaluation` (proportion metrics).
"""

from spadekit.methods.palette import method as _method  # noqa: F401  (registers the method)
from spadekit.methods.palette import official as _official  # noqa: F401  (registers the checkpoint format)
from spadekit.methods.palette.layout_discriminator import LayoutDiscriminator
from spadekit.methods.palette.layout_generator import LayoutGenerator
from spadekit.methods.palette.objective import PaletteBatch, PaletteObjective
from spadekit.methods.palette.schedule import ProgressiveSchedule

__all__ = ["LayoutGenerator", "LayoutDiscriminator", "PaletteObjective", "PaletteBatch", "ProgressiveSchedule"]
