"""CLADE and CLADE-ICPE (Tan et al., TPAMI 2021): SPADE's generator with class-adaptive normalisation.

Networks (:class:`CLADEGenerator`, :class:`FastCLADEGenerator`), the ICPE offset maps for the data
pipeline (:func:`intra_class_offsets`, :func:`flip_offsets`), official checkpoint conversion
(:mod:`spadekit.methods.clade.convert`) and the method registration (:mod:`spadekit.methods.clade.method`:
config section ``clade:``, presets ``clade-*``, format ``spadekit convert clade``). The discriminator and
encoder are SPADE's.
"""

from spadekit.methods.clade.blocks import CLADEResBlock
from spadekit.methods.clade.fast import FastCLADEGenerator
from spadekit.methods.clade.generator import CLADEGenerator
from spadekit.methods.clade.norm import CLADE, ClassAffine
from spadekit.methods.clade.method import CLADE_METHOD, CladeOptions
from spadekit.methods.clade.positional import flip_offsets, intra_class_offsets, offsets_of_index

__all__ = [
    "CLADE",
    "ClassAffine",
    "CLADEResBlock",
    "CLADEGenerator",
    "FastCLADEGenerator",
    "intra_class_offsets",
    "flip_offsets",
    "offsets_of_index",
    "CLADE_METHOD",
    "CladeOptions",
]
