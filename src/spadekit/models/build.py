"""Builders: the only place that turns a :class:`ModelConfig` into networks."""

from __future__ import annotations

from torch import nn

from spadekit.config import Config, ModelConfig
from spadekit.models.baselines import Pix2PixHDGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator
from spadekit.models.encoder import ConvEncoder
from spadekit.models.generator import SPADEGenerator
from spadekit.models.init import init_weights
from spadekit.models.registry import as_config, create, register


@register("generator", "spade", "SPADE generator (Park et al. 2019): semantics modulate every normalisation")
def _spade(config: Config) -> nn.Module:
    cfg = config.model
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
        layout_classes=cfg.label_nc + int(cfg.contain_dontcare),
        latent_spade=cfg.latent_spade,
    )


@register("generator", "pix2pixhd", "pix2pixHD-style baseline: labels fed to the first layer, ordinary norms")
def _pix2pixhd(config: Config) -> nn.Module:
    cfg = config.model
    return Pix2PixHDGenerator(
        semantic_nc=cfg.semantic_nc,
        ngf=cfg.ngf,
        downsampling=cfg.baseline_downsampling,
        blocks=cfg.baseline_blocks,
        norm="instance" if cfg.norm_G == "instance" else "batch",
    )


@register("discriminator", "multiscale", "multi-scale PatchGAN returning every intermediate feature")
def _multiscale(config: Config) -> nn.Module:
    cfg = config.model
    return MultiscaleDiscriminator(
        in_channels=cfg.semantic_nc + 3,
        ndf=cfg.ndf,
        num_D=cfg.num_D,
        n_layers=cfg.n_layers_D,
        norm=cfg.norm_D,
        spectral=cfg.spectral_D,
    )


@register("encoder", "conv", "VAE style encoder: image -> (mu, logvar)")
def _conv_encoder(config: Config) -> nn.Module:
    cfg = config.model
    return ConvEncoder(ngf=cfg.ngf, z_dim=cfg.z_dim, norm=cfg.norm_E, spectral=cfg.spectral_E)


def build_generator(cfg: Config | ModelConfig, init: bool = True) -> nn.Module:
    config = as_config(cfg)
    network = create("generator", config.model.generator, config)
    return init_weights(network) if init else network


def build_discriminator(cfg: Config | ModelConfig, init: bool = True) -> nn.Module:
    config = as_config(cfg)
    network = create("discriminator", config.model.discriminator, config)
    return init_weights(network) if init else network


def build_encoder(cfg: Config | ModelConfig, init: bool = True) -> nn.Module | None:
    """The style encoder, or None when the model has no VAE."""
    config = as_config(cfg)
    if not config.model.use_vae:
        return None
    network = create("encoder", config.model.encoder, config)
    return init_weights(network) if init else network


def build_networks(cfg: Config | ModelConfig, init: bool = True) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """(generator, discriminator, encoder-or-None) from the registry names of the model section."""
    return build_generator(cfg, init), build_discriminator(cfg, init), build_encoder(cfg, init)
