"""ASAPNet (Rott Shaham et al., CVPR 2021): a low-res CNN predicts per-tile pixel-MLP weights.

Networks (:class:`ASAPNetGenerator`, :class:`FastASAPNetGenerator`, :class:`ASAPNetDiscriminator`),
official checkpoint conversion (:mod:`spadekit.methods.asapnet.convert`) and the method registration
(:mod:`spadekit.methods.asapnet.method`: config section ``asapnet:``, presets ``asapnet-*``, format
``spadekit convert asapnet``).
"""

from spadekit.methods.asapnet.discriminator import ASAPNetDiscriminator
from spadekit.methods.asapnet.fast import FastASAPNetGenerator
from spadekit.methods.asapnet.generator import ASAPNetGenerator, allowed_widths, total_downsampling
from spadekit.methods.asapnet.inputs import instance_distance_channel
from spadekit.methods.asapnet.layers import TentDownsample
from spadekit.methods.asapnet.lowres import LowResStream
from spadekit.methods.asapnet.method import ASAPNET, AsapnetOptions
from spadekit.methods.asapnet.pixelmlp import PixelMLP, positional_encoding

__all__ = [
    "ASAPNetGenerator",
    "FastASAPNetGenerator",
    "ASAPNetDiscriminator",
    "LowResStream",
    "PixelMLP",
    "TentDownsample",
    "positional_encoding",
    "total_downsampling",
    "allowed_widths",
    "instance_distance_channel",
    "ASAPNET",
    "AsapnetOptions",
]
