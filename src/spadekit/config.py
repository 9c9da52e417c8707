"""Typed, validated configuration: nested dataclasses, YAML presets, dotted overrides.

Only ``build_*`` helpers and the command line read a :class:`Config`; every module takes
explicit arguments. A resolved config is written beside every run and every released model
(``config.json``), so a model can always be rebuilt from its own directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import yaml

from spadekit.errors import ConfigError

MAX_SEED = 2**63 - 1
"""Seeds lie in ``0 .. 2**63-1`` everywhere (also :data:`spadekit.data.inputs.MAX_SEED`)."""

NormName = Literal["batch", "syncbatch", "instance", "none"]
UpsamplingMode = Literal["normal", "more", "most"]
GanMode = Literal["hinge", "ls", "original", "w"]
PreprocessMode = Literal[
    "resize_and_crop",
    "crop",
    "scale_width",
    "scale_width_and_crop",
    "scale_shortside",
    "scale_shortside_and_crop",
    "fixed",
    "none",
]
OffsetsMode = Literal["none", "normalized", "pixels"]
UPSAMPLING_LAYERS = {"normal": 5, "more": 6, "most": 7}


@dataclass
class ModelConfig:
    """What the networks look like. Every width scales with ``ngf`` / ``ndf``."""

    generator: str = "spade"
    """Generator architecture by registry name (``spadekit list`` shows them), e.g. ``spade`` or ``pix2pixhd``."""
    discriminator: str = "multiscale"
    """Discriminator architecture by registry name."""
    encoder: str = "conv"
    """Style-encoder architecture by registry name (built when ``use_vae`` is on)."""
    label_nc: int = 13
    """Number of semantic classes (ids ``0 .. label_nc-1``), not counting don't-care."""
    contain_dontcare: bool = False
    """Add one channel for don't-care pixels (label value 255 is mapped to index ``label_nc``)."""
    use_instance: bool = False
    """Append an instance-boundary channel computed from instance maps."""
    ngf: int = 64
    """Generator (and style encoder) base width."""
    ndf: int = 64
    """Discriminator base width."""
    width: int = 256
    """Output width in pixels (the official ``crop_size``)."""
    aspect_ratio: float = 1.0
    """Width / height of the output. The latent height is ``round(latent_width / aspect_ratio)``."""
    upsampling: UpsamplingMode = "normal"
    """Number of ×2 upsamplings in the generator: normal 5, more 6, most 7 (adds ``up_4``)."""
    norm_G: NormName = "syncbatch"
    """Parameter-free norm inside SPADE. ``syncbatch`` is plain batch norm on one process and
    sync batch norm under DDP; the official default."""
    spectral_G: bool = True
    """Spectral norm on the residual blocks' convolutions (conv_0, conv_1, conv_s)."""
    spade_kernel: int = 3
    """Kernel size of the SPADE convolutions (3 or 5)."""
    spade_hidden: int = 128
    """Hidden width of the SPADE shared convolution (the paper's 128)."""
    use_vae: bool = False
    """Train with the style encoder; the generator then starts from a 256-d latent ``z``."""
    z_dim: int = 256
    """Size of the latent ``z`` (VAE mode)."""
    latent_spade: bool = False
    """spade generator with VAE only: every SPADE layer also sees ``z`` (a linear map of it, added
    to the layer's hidden map before the ReLU), so the latent reaches every resolution instead of
    only the start map and a style photo's colours can depend on the class they fall in. Not in the
    official SPADE (official checkpoints never have it)."""
    num_D: int = 2
    """Number of discriminator scales."""
    n_layers_D: int = 4
    """Layers per patch discriminator."""
    norm_D: NormName = "instance"
    """Norm of the discriminator's inner layers."""
    spectral_D: bool = True
    """Spectral norm on the discriminator's inner convolutions."""
    norm_E: NormName = "instance"
    """Norm of the style encoder's convolutions."""
    spectral_E: bool = True
    """Spectral norm on the style encoder's convolutions."""
    baseline_downsampling: int = 4
    """pix2pixhd baseline only: stride-2 downsamplings before the residual blocks."""
    baseline_blocks: int = 9
    """pix2pixhd baseline only: residual blocks at the bottleneck."""

    def __post_init__(self) -> None:
        _check(self.label_nc >= 1, "model.label_nc must be >= 1")
        _check(self.ngf >= 1 and self.ndf >= 1, "model.ngf and model.ndf must be >= 1")
        _check(self.spade_kernel in (1, 3, 5, 7), "model.spade_kernel must be odd (3 or 5)")
        _check(self.aspect_ratio > 0, "model.aspect_ratio must be positive")
        _check(self.num_D >= 1 and self.n_layers_D >= 1, "model.num_D and model.n_layers_D must be >= 1")
        _check_choice("model.upsampling", self.upsampling, UpsamplingMode)
        for name in ("norm_G", "norm_D", "norm_E"):
            _check_choice(f"model.{name}", getattr(self, name), NormName)
        _check(self.norm_G != "none", "model.norm_G must be batch, syncbatch or instance")
        w, h = self.latent_size
        _check(
            w >= 1 and h >= 1,
            f"model.width={self.width} is too small for upsampling={self.upsampling!r}: "
            f"the latent would be {w}x{h}; increase model.width (a multiple of {2 ** UPSAMPLING_LAYERS[self.upsampling]}) "
            "or lower model.aspect_ratio",
        )
        _check(
            not self.latent_spade or (self.use_vae and self.generator == "spade"),
            "model.latent_spade needs model.use_vae=true and model.generator=spade",
        )
        _check(
            not (self.norm_G == "instance" and w * h == 1 and self.generator == "spade"),
            "model.norm_G=instance needs a latent map larger than 1x1; increase model.width",
        )

    @property
    def semantic_nc(self) -> int:
        """Channels of the one-hot semantics: classes (+ don't-care) (+ instance edges)."""
        return self.label_nc + int(self.contain_dontcare) + int(self.use_instance)

    @property
    def latent_size(self) -> tuple[int, int]:
        """(width, height) of the generator's starting feature map."""
        sw = self.width // (2 ** UPSAMPLING_LAYERS[self.upsampling])
        sh = round(sw / self.aspect_ratio)
        return sw, sh

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of generated images."""
        sw, sh = self.latent_size
        scale = 2 ** UPSAMPLING_LAYERS[self.upsampling]
        return sw * scale, sh * scale


@dataclass
class DataConfig:
    """Where the data comes from and how it is prepared."""

    format: str = "folder"
    """Dataset format: cityscapes, ade20k, ade20k-outdoor, coco, folder or toy."""
    root: str | None = None
    """Dataset root (for ``toy`` with no root, scenes are generated on the fly)."""
    preprocess: PreprocessMode = "resize_and_crop"
    """How images are resized and cropped (the official ``preprocess_mode``)."""
    load_size: int = 286
    """Size images are loaded at before cropping (training)."""
    crop_size: int = 256
    """Size of the crop (training); at test time images are resized to the model size."""
    no_flip: bool = False
    """Disable random horizontal flips."""
    label_offset: int = 0
    """Added to every label id read from disk; with an offset, the don't-care value 255 becomes
    class 0 (OASIS's COCO-Stuff convention: raw id v is class v+1, 255 is class 0 "unknown")."""
    palette: str | None = None
    """Optional palette file (JSON: ``{"names": [...], "colors": [[r,g,b], ...]}``) for colour-coded labels."""
    class_names: list[str] | None = None
    """Human-readable class names, index-aligned with label ids."""
    colors: list[list[int]] | None = None
    """Display colour per class (RGB), index-aligned with label ids."""
    num_workers: int = 0
    """DataLoader worker processes."""
    pin_memory: bool = False
    """Pin host memory for faster copies to the GPU."""
    toy_scenes: int = 1000
    """toy only: how many scenes to generate when no root is given."""
    toy_seed: int = 0
    """toy only: seed of the generated scenes."""
    toy_style_pairs: bool = False
    """toy only: every scene also carries ``style_image``, a photo of another scene's layout in the
    same look (one style seed for both), and the style encoder reads that photo instead of the
    scene's own. The latent must then carry the look and not the layout: a style photo's colours
    have to reach a layout it was not taken of, which is what drawing a label map in the style of
    another photo asks. Only the toy world can pair two layouts in one look."""
    offsets: OffsetsMode = "none"
    """Give every item each pixel's offset from the centre of its class region (``offsets``, (2, H, W):
    rows, then columns; CLADE-ICPE's input): computed on the raw annotation, then resized, cropped and
    flipped with it (:mod:`spadekit.data.offsets`). ``normalized`` divides each region's offsets by
    their largest magnitude (the paper's default), ``pixels`` keeps pixels; ``none``: no map."""
    offsets_ignore: int | None = 0
    """The raw label value whose pixels get no offsets (0, the paper's rule; none: every value gets them)."""

    def __post_init__(self) -> None:
        _check_choice("data.preprocess", self.preprocess, PreprocessMode)
        _check_choice("data.offsets", self.offsets, OffsetsMode)
        _check(self.load_size >= 1 and self.crop_size >= 1, "data.load_size and data.crop_size must be >= 1")
        _check(0 <= self.label_offset < 255, "data.label_offset must be in 0..254")
        _check(0 <= self.toy_seed <= MAX_SEED, f"data.toy_seed={self.toy_seed} is not a seed: seeds lie in 0..2**63-1")


@dataclass
class LossConfig:
    """The objective's terms and weights (SPEC §2)."""

    gan_mode: GanMode = "hinge"
    """GAN loss: hinge, ls (least squares), original (BCE with logits) or w (Wasserstein)."""
    lambda_gan: float = 1.0
    """Weight of the generator's adversarial term. 0 together with no feature matching leaves the
    discriminator out of the generator step: what a phase that trains only the style encoder
    against a frozen generator (``train.frozen``) wants, since the encoder's latent needs no critic."""
    lambda_feat: float = 10.0
    """Weight of discriminator feature matching (divided by the number of scales)."""
    lambda_vgg: float = 10.0
    """Weight of the VGG19 perceptual loss; 0 disables it."""
    lambda_kld: float = 0.05
    """Weight of the KL term (VAE mode only)."""
    lambda_l1: float = 0.0
    """Weight of an L1 term between the fake and the real photo (mean over pixels and channels);
    0 (the paper's objective) disables it. Not in the paper: it stands in for the VGG term's pull
    towards the real photo when VGG weights are unavailable, so a VAE encoder is not ignored."""
    l1_pool: int = 1
    """Average-pool both images with this kernel (and stride) before the L1 term: 1 compares pixels;
    larger values compare only colours and light at that scale, leaving texture to the GAN terms."""
    lambda_region_colour: float = 0.0
    """Weight of an L1 term between the fake's and the real photo's mean colour inside every
    semantic region (each channel of the one-hot input, per image); 0 (the paper's objective)
    disables it. Not in the paper: a direct pull towards the style photo's colour of each class,
    which the encoder must then carry (see ``spadekit.losses.region_colour_l1``)."""
    lambda_prior_gan: float = 0.0
    """Weight of a generator GAN term on images drawn from the prior (``z ~ N(0, I)``, two per
    layout of the batch), beside the usual term on the style encoder's latents; 0 (the paper's
    objective) disables it. Not in the paper: in VAE mode the generator otherwise trains only on
    encoder latents, so with a small ``lambda_kld`` (posteriors far from the prior) the random
    samples that ``synthesize`` draws without a style photo are never judged."""
    lambda_mode_seeking: float = 0.0
    """Weight of the mode-seeking term (Mao et al., CVPR 2019) on the same two prior images per
    layout: the mean of ``1 / (mean|G(s, z1) - G(s, z2)| / mean|z1 - z2| + 1e-5)``, which grows when
    two latents give alike images; 0 disables it. Not in the paper: it keeps random samples of one
    layout diverse while other terms pull the generator towards the style photo."""
    feature_matching: bool = True
    """Use discriminator feature matching."""
    vgg_weights: str | None = None
    """Path to torchvision's ImageNet VGG19 weights (``vgg19-dcbb9e9d.pth``); default: the torch cache."""

    def __post_init__(self) -> None:
        _check_choice("loss.gan_mode", self.gan_mode, GanMode)
        _check(min(self.lambda_gan, self.lambda_feat, self.lambda_vgg, self.lambda_kld, self.lambda_l1, self.lambda_region_colour,
                   self.lambda_prior_gan, self.lambda_mode_seeking) >= 0, "loss weights must be >= 0")
        _check(self.l1_pool >= 1, "loss.l1_pool must be >= 1")


@dataclass
class TrainConfig:
    """Optimisation and the training loop."""

    batch_size: int = 1
    """Global batch size (split over processes under torchrun)."""
    epochs: int = 50
    """Epochs at constant learning rate (the official ``niter``)."""
    epochs_decay: int = 0
    """Epochs of linear decay to zero after ``epochs`` (the official ``niter_decay``)."""
    lr: float = 2e-4
    """Base learning rate. With TTUR: G uses lr/2, D uses lr*2."""
    ttur: bool = True
    """Two-time-scale update rule: G lr/2, D lr*2, betas (0, 0.9). Off: both lr, betas (0.5, 0.999)."""
    beta1: float | None = None
    """Adam beta1; default follows ``ttur``."""
    beta2: float | None = None
    """Adam beta2; default follows ``ttur``."""
    lr_G: float | None = None
    """Generator learning rate; overrides the one derived from ``lr`` and ``ttur``."""
    lr_D: float | None = None
    """Discriminator learning rate; overrides the one derived from ``lr`` and ``ttur``."""
    regenerate_fakes: bool = False
    """The official iteration order: the G update first, then the D step on fakes generated anew by
    the updated G. Default (false): the D step reuses the G step's fakes, one generator forward less."""
    ema_refresh_batches: int = 0
    """Before the EMA generator is released, run it in train mode (no gradients) over this many
    training batches to refresh its batch-norm statistics (OASIS does this with 51); 0: never."""
    seed: int = 0
    """Random seed (weights, data order, noise)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Autocast precision. fp16 uses a gradient scaler."""
    channels_last: bool = False
    """Use channels-last memory format (faster on GPUs with tensor cores)."""
    compile: bool = False
    """Compile the networks with ``torch.compile``."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of G with this decay (0 disables); the release model is then
    the EMA generator. It averages over about ``1 / (1 - ema_decay)`` steps (1000 for 0.999)."""
    ema_warmup: bool = True
    """Ramp the EMA decay up as ``min(ema_decay, (1 + t) / (10 + t))`` at step ``t``, so the average
    follows the live generator early on instead of holding mostly random initial weights (a short
    run would otherwise release a flat grey model). Off: the full decay from the first step."""
    grad_accum: int = 1
    """Accumulate gradients over this many micro-batches per optimiser step."""
    frozen: list[str] = field(default_factory=list)
    """Network parts held fixed (e.g. ``[generator]`` or ``[generator, discriminator]``): no optimiser
    updates them, they run in eval mode (batch norms use and keep their running statistics), and a
    phase with every discriminator part frozen skips the discriminator step. With ``--init-from``
    this trains a new style encoder for a released generator without changing its images."""
    trainable: list[str] = field(default_factory=list)
    """Train only the parameters whose names match one of these patterns (shell-style, over
    ``part.parameter`` names, the part's state-dict keys such as ``generator.up_3.norm_0.mlp_latent.weight``
    or ``encoder.*``). Empty: every parameter of the parts not frozen. The other
    parameters keep their values, but their parts still run in training mode (batch norms go on
    updating their running statistics). A part left with nothing to train gets no optimiser step."""
    checkpoint_every: int = 1000
    """Write a training checkpoint every N generator steps."""
    keep_checkpoints: int = 3
    """How many recent checkpoints to keep."""
    log_every: int = 50
    """Log scalars every N steps."""
    image_every: int = 500
    """Log image grids and gallery samples every N steps."""

    def __post_init__(self) -> None:
        _check(self.batch_size >= 1, "train.batch_size must be >= 1")
        _check(0 <= self.seed <= MAX_SEED, f"train.seed={self.seed} is not a seed: seeds lie in 0..2**63-1")
        _check(self.grad_accum >= 1, "train.grad_accum must be >= 1")
        _check(0.0 <= self.ema_decay < 1.0, "train.ema_decay must be in [0, 1)")
        _check(self.precision in ("fp32", "bf16", "fp16"), "train.precision must be fp32, bf16 or fp16")
        _check(self.ema_refresh_batches >= 0, "train.ema_refresh_batches must be >= 0")
        _check(len(set(self.frozen)) == len(self.frozen), f"train.frozen={self.frozen} names a part twice")
        _check(not ("generator" in self.frozen and self.ema_decay > 0),
               "train.frozen holds the generator, so there is nothing for its EMA to average: set train.ema_decay=0 "
               "(the release then holds the frozen generator as loaded)")
        for name in ("lr_G", "lr_D"):
            value = getattr(self, name)
            _check(value is None or value >= 0, f"train.{name} must be >= 0")


# Method-specific option sections (``oasis:``, ``asapnet:`` ...), registered by the methods
# themselves: a method adds its section without touching this file.
_SECTIONS: dict[str, type] = {}


def register_section(name: str, options: type) -> type:
    """Make the dataclass ``options`` the config section ``name`` (a top-level YAML key and
    ``--set name.field=value``). Returns ``options`` so it can be used as a decorator argument."""
    if name in {f.name for f in dataclasses.fields(Config)}:
        raise ValueError(f"config section {name!r} clashes with a built-in section")
    if not dataclasses.is_dataclass(options):
        raise TypeError("a config section must be a dataclass")
    _SECTIONS[name] = options
    return options


def registered_sections() -> dict[str, type]:
    _load_methods()
    return dict(_SECTIONS)


def _load_methods() -> None:
    # The methods register their sections on import; configs may be read before anything imported them.
    import spadekit.methods  # noqa: F401


@dataclass
class Config:
    """Everything a run needs. ``preset`` names the YAML file it started from; ``method`` names the
    registered method (networks + objective + presets, ``spadekit list``) that the run uses."""

    preset: str = "custom"
    method: str = "spade"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sections: dict[str, Any] = field(default_factory=dict)
    """Method-specific sections by name (see :func:`register_section`); a missing one takes its defaults."""

    def section(self, name: str) -> Any:
        """The options dataclass of section ``name`` (its defaults when the config has none)."""
        if name not in self.sections:
            sections = registered_sections()
            if name not in sections:
                raise ConfigError(f"no config section {name!r} is registered")
            self.sections[name] = sections[name]()
        return self.sections[name]

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: dataclasses.asdict(getattr(self, f.name)) if dataclasses.is_dataclass(getattr(self, f.name))
                  else getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "sections"}
        for name, options in sorted(self.sections.items()):
            values[name] = dataclasses.asdict(options)
        return values

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def save(self, path: str | Path) -> None:
        """Write the resolved config as JSON (atomically)."""
        from spadekit.io import atomic_write_text

        atomic_write_text(Path(path), self.to_json() + "\n")


# ----------------------------------------------------------------------------- building


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _check_choice(name: str, value: Any, literal: Any) -> None:
    choices = get_args(literal)
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not one of {', '.join(map(str, choices))}")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the field's annotated type, with a readable error."""
    origin = get_origin(annotation)
    args = get_args(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}")
        return _from_dict(annotation, value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}={value!r} is not one of {', '.join(map(str, args))}")
        return value
    if args and type(None) in args:  # Optional[X]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.lower() in ("true", "yes", "1", "on")
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, str, float)):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        try:
            as_float = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, got {value!r}") from None
        if as_float != int(as_float):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return int(as_float)
    if annotation is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if annotation is str:
        return str(value)
    if origin is list:
        if isinstance(value, str):
            value = yaml.safe_load(value)
        if not isinstance(value, list):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{where}[{i}]") if args else v for i, v in enumerate(value)]
    return value


def _from_dict(cls: type, values: dict[str, Any], where: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    if cls is Config:
        values = dict(values)
        if "sections" in values:
            raise ConfigError("unknown option(s) sections")
        sections = registered_sections()
        chosen = {}
        for key in [k for k in values if k in sections]:
            chosen[key] = _coerce(values.pop(key) or {}, sections[key], key)
        config = _from_dict_plain(cls, values, where, hints, names)
        if config.method in sections and config.method not in chosen:
            chosen[config.method] = sections[config.method]()  # a method's section is always written out
        config.sections.update(chosen)
        from spadekit.methods import check_config

        check_config(config)
        return config
    return _from_dict_plain(cls, values, where, hints, names)


def _from_dict_plain(cls: type, values: dict[str, Any], where: str, hints: dict[str, Any], names: set[str]) -> Any:
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(f'{where}.{u}'.lstrip('.') for u in unknown)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}".lstrip(".")) for k, v in values.items()}
    return cls(**kwargs)


def config_from_dict(values: dict[str, Any]) -> Config:
    """Build and validate a :class:`Config` from a (possibly partial) nested dict."""
    return _from_dict(Config, values, "")


def _deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def list_presets() -> list[str]:
    """Names of the YAML presets shipped with the package."""
    folder = resources.files("spadekit") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def preset_dict(name: str) -> dict[str, Any]:
    """The raw nested dict of a shipped preset (or of a YAML file path)."""
    path = Path(name)
    if name.endswith((".yaml", ".yml")) and path.exists():
        text = path.read_text()
    else:
        resource = resources.files("spadekit") / "presets" / f"{name}.yaml"
        if not resource.is_file():
            raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(list_presets())} or a YAML file")
        text = resource.read_text()
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"preset {name!r} is not valid YAML: {exc}") from None
    values.setdefault("preset", path.stem if path.exists() else name)
    return values


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["model.ngf=32", "train.lr=1e-4"]`` into a nested dict (values parsed as YAML scalars)."""
    nested: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"override {pair!r} must look like section.key=value")
        key, raw = pair.split("=", 1)
        parts = key.strip().split(".")
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"override {pair!r}: the key must be dotted, e.g. model.ngf=32")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        cursor = nested
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
    return nested


def load_config(preset: str = "custom", overrides: list[str] | None = None, extra: dict[str, Any] | None = None) -> Config:
    """Preset → merge ``extra`` (a nested dict) → merge dotted ``overrides`` → validated :class:`Config`."""
    values = preset_dict(preset)
    if extra:
        values = _deep_merge(values, extra)
    if overrides:
        values = _deep_merge(values, parse_overrides(overrides))
    return config_from_dict(values)
