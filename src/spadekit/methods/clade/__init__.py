"""CLADE and CLADE-ICPE (Tan et al., TPAMI 2021): SPADE's generator with class-adaptive normalisation.

Networks (:class:`CLADEGenerator`, :class:`FastCLADEGenerator`), the ICPE offset maps for the data
pipeline (:func:`intra_class_offsets`, :func:`flip_offsets`) and official checkpoint conversion
(:mod:`spadekit.methods.clade.convert`). The discriminator and encoder are SPADE's.
"""

from spadekit.methods.clade.blocks import CLADEResBlock
from spadekit.methods.clade.fast import FastCLADEGenerator
from spadekit.methods.clade.generator import CLADEGenerator
from spadekit.methods.clade.norm import CLADE, ClassAffine
from spadekit.methods.clade.positional import flip_offsets, intra_class_offsets

__all__ = [
    "CLADE",
    "ClassAffine",
    "CLADEResBlock",
    "CLADEGenerator",
    "FastCLADEGenerator",
    "intra_class_offsets",
    "flip_offsets",
]
