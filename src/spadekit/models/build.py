"""Builders: the only place that turns a :class:`ModelConfig` into networks."""

from __future__ import annotations

from torch import nn

from spadekit.config import ModelConfig
from spadekit.models.baselines import Pix2PixHDGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator
from spadekit.models.encoder import ConvEncoder
from spadekit.models.generator import SPADEGenerator
from spadekit.models.init import init_weights
from spadekit.models.registry import create, register


@register("generator", "spade", "SPADE generator (Park et al. 2019): semantics modulate every normalisation")
def _spade(cfg: ModelConfig) -> nn.Module:
    return SPADEGenerator(
        semantic_nc=cfg.semantic_nc,
        ngf=cfg.ngf,
        width=cfg.width,
        aspect_ratio=cfg.aspect_ratio,
        upsampling=cfg.upsampling,
        norm=cfg.norm_G,
        spectral=cfg.spectral_G,
        spade_kernel=cfg.spade_kernel,
        spade_hidden=cfg.spade_hidden,
        use_vae=cfg.use_vae,
        z_dim=cfg.z_dim,
    )


@register("generator", "pix2pixhd", "pix2pixHD-style baseline: labels fed to the first layer, ordinary norms")
def _pix2pixhd(cfg: ModelConfig) -> nn.Module:
    return Pix2PixHDGenerator(
        semantic_nc=cfg.semantic_nc,
        ngf=cfg.ngf,
        downsampling=cfg.baseline_downsampling,
        blocks=cfg.baseline_blocks,
        norm="instance" if cfg.norm_G == "instance" else "batch",
    )


@register("discriminator", "multiscale", "multi-scale PatchGAN returning every intermediate feature")
def _multiscale(cfg: ModelConfig) -> nn.Module:
    return MultiscaleDiscriminator(
        in_channels=cfg.semantic_nc + 3,
        ndf=cfg.ndf,
        num_D=cfg.num_D,
        n_layers=cfg.n_layers_D,
        norm=cfg.norm_D,
        spectral=cfg.spectral_D,
    )


@register("encoder", "conv", "VAE style encoder: image -> (mu, logvar)")
def _conv_encoder(cfg: ModelConfig) -> nn.Module:
    return ConvEncoder(ngf=cfg.ngf, z_dim=cfg.z_dim, norm=cfg.norm_E, spectral=cfg.spectral_E)


def build_generator(cfg: ModelConfig, init: bool = True) -> nn.Module:
    network = create("generator", cfg.generator, cfg)
    return init_weights(network) if init else network


def build_discriminator(cfg: ModelConfig, init: bool = True) -> nn.Module:
    network = create("discriminator", "multiscale", cfg)
    return init_weights(network) if init else network


def build_encoder(cfg: ModelConfig, init: bool = True) -> nn.Module | None:
    """The style encoder, or None when the model has no VAE."""
    if not cfg.use_vae:
        return None
    network = create("encoder", "conv", cfg)
    return init_weights(network) if init else network


def build_networks(cfg: ModelConfig, init: bool = True) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(generator, discriminator, encoder-or-None)."""
    return build_generator(cfg, init), build_discriminator(cfg, init), build_encoder(cfg, init)
