"""CLADE-ICPE's intra-class positional map; computed in the data pipeline
(:mod:`spadekit.data.offsets`, where the rules and the paper's flip bug are described) and, at
inference, from the generator's class map."""

from spadekit.data.offsets import flip_offsets, intra_class_offsets, offsets_of_index, transform_offsets

__all__ = ["flip_offsets", "intra_class_offsets", "offsets_of_index", "transform_offsets"]
