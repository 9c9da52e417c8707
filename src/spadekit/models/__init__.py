"""Networks: SPADE generator, multi-scale discriminator, style encoder, pix2pixHD baseline."""

from spadekit.models.baselines import Pix2PixHDGenerator
from spadekit.models.blocks import SPADEResBlock
from spadekit.models.build import build_discriminator, build_encoder, build_generator, build_networks
from spadekit.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from spadekit.models.encoder import ConvEncoder, reparameterize
from spadekit.models.generator import SPADEGenerator
from spadekit.models.norms import SPADE

__all__ = [
    "SPADE",
    "SPADEResBlock",
    "SPADEGenerator",
    "Pix2PixHDGenerator",
    "PatchDiscriminator",
    "MultiscaleDiscriminator",
    "ConvEncoder",
    "reparameterize",
    "build_generator",
    "build_discriminator",
    "build_encoder",
    "build_networks",
]
