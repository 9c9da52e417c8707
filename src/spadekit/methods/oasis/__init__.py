"""OASIS (Schönfeld, Sushko et al., ICLR 2021): "You Only Need Adversarial Supervision for Semantic
Image Synthesis". A SPADE generator with 3D noise, a U-Net segmentation discriminator with N+1
classes, class-balanced cross-entropy and LabelMix; exact to boschresearch/OASIS.
"""

from spadekit.methods.oasis.convert import load_official_oasis, write_official_oasis
from spadekit.methods.oasis.discriminator import OasisDiscriminator
from spadekit.methods.oasis.ema import refresh_batchnorm_stats, update_ema_official
from spadekit.methods.oasis.generator import OasisGenerator, class_mask, official_start_size, region_noise
from spadekit.methods.oasis.method import OASIS, OasisOptions
from spadekit.methods.oasis.objective import OasisObjective

__all__ = [
    "OASIS",
    "OasisOptions",
    "OasisDiscriminator",
    "OasisGenerator",
    "OasisObjective",
    "class_mask",
    "load_official_oasis",
    "official_start_size",
    "refresh_batchnorm_stats",
    "region_noise",
    "update_ema_official",
    "write_official_oasis",
]
