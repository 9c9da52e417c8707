"""The ``semantic-palette`` checkpoint format: a folder of official ``seg_g_net_<n>.pth`` (+
``seg_d_net_<n>.pth``, ``img_g_net_<epoch>.pth``) ↔ a spadekit palette model.

``spadekit convert semantic-palette DIR --out M`` reads the layout generator (the largest n unless
the file is chosen by moving the others away), its critic and, when present, the GauGAN image
generator, which the model then carries (``palette.image_config``). The weights give every width,
the class count, the latent size, the aspect ratio, the joints and the palette-fed critic; the rest
(``palette.joint_type`` bias vs linear, ``activation``, ``conditional``, ``filter_small``, the image
stage's ``image_width`` / ``image_upsampling``) comes from the preset and ``--set``. The official
palette mixture (``cond_estimator.pkl``) is a pickle and is never read: ``spadekit palette fit``
fits one on the dataset. ``spadekit convert to-semantic-palette M --out DIR`` writes files the
official code loads strictly.
"""

from __future__ import annotations

from pathlib import Path

from spadekit.config import config_from_dict, load_config
from spadekit.conversion import CheckpointFormat, register_format
from spadekit.errors import CheckpointError, ConfigError
from spadekit.methods.palette.convert import (
    _NAME,
    LABELS,
    export_official,
    find_checkpoints,
    infer_layout_generator,
    load_official,
    pick_checkpoint,
    read_state,
)

PRESET_BY_CLASSES = {35: "palette-cityscapes", 19: "palette-celebamask-hq"}


def _image_values(official_image, path: Path, base, num_classes: int, width: int, aspect: int) -> dict:
    """The config (as a dict) of a spadekit SPADE model equal to the official image generator."""
    from spadekit.convert import infer_generator_options

    options = infer_generator_options(official_image.state_dict(), path)
    model = {
        "generator": "spade", "label_nc": num_classes, "contain_dontcare": False, "use_instance": False,
        "ngf": options["ngf"], "width": width, "aspect_ratio": float(aspect), "upsampling": official_image.upsampling,
        "norm_G": "syncbatch" if options["_batch_norm"] else "instance", "spectral_G": options["spectral_G"],
        "spade_kernel": options["spade_kernel"], "spade_hidden": options["spade_hidden"],
        "use_vae": options["use_vae"], "z_dim": options.get("z_dim", 256),
    }
    data = {"class_names": base.data.class_names, "colors": base.data.colors}
    return {"preset": f"{base.preset} (image stage)", "method": "spade", "model": model, "data": data}


def read_official(directory: Path, preset: str | None, overrides: list[str]):
    """An official Semantic Palette checkpoint folder → a palette release model."""
    from spadekit.methods.palette.method import networks
    from spadekit.release import SpadeModel, load_state_into

    directory = Path(directory)
    found = find_checkpoints(directory)
    g_path = pick_checkpoint(found, LABELS["layout_generator"], None, directory)
    if g_path is None:
        raise CheckpointError(f"{directory}: no layout generator checkpoint (seg_g_net_<n>.pth)")
    inferred = infer_layout_generator(read_state(g_path), g_path)
    classes, aspect = inferred["num_semantics"], inferred["aspect_ratio"]
    preset = preset or PRESET_BY_CLASSES.get(classes, "palette-custom")
    base = load_config(preset, overrides)
    if base.method != "palette":
        raise CheckpointError(f"{directory}: preset {preset!r} is not a palette preset (`spadekit list`)")
    o = base.section("palette")
    max_dim = 2 ** (len(inferred["widths"]) + 1)
    n = int(_NAME.match(g_path.name)["n"])
    final_res = n if 4 <= n <= max_dim and not n & (n - 1) else max_dim
    image_width = o.image_width or final_res * aspect
    try:
        official = load_official(
            directory,
            # bias and linear joints have the same weights: the preset decides; affine shows in the weights.
            joint_type=None if o.joint_type == "bias" else o.joint_type,
            activation=o.activation,
            conditional=o.conditional,
            filter_small=o.filter_small,
            res=final_res,
            image_width=image_width,
            image_upsampling=o.image_upsampling,
        )
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    g, d = official.layout_generator, official.layout_discriminator
    values = base.to_dict()
    names = values["data"].get("class_names")
    if names is not None and len(names) != classes:
        values["data"].update(class_names=None, colors=None)
        base.data.class_names = base.data.colors = None
    # model.width is where training label maps are loaded; the shared model checks want >= 32 per aspect unit.
    values["model"].update(label_nc=classes, width=max(final_res, 32) * aspect, aspect_ratio=float(aspect))
    values["palette"].update(
        max_dim=max_dim, final_res=final_res, latent_dim=g.latent_dim, widths=list(g.widths), joints_per_block=g.joints_per_block,
        joint_type=g.joint_type, phase_steps=[1], image_config=None,
    )
    if d is not None:
        values["palette"].update(critic_widths=list(d.widths), critic_final_width=d.final_width, palette_critic=d.palette_input)
    if official.image_generator is not None:
        values["palette"]["image_config"] = _image_values(
            official.image_generator, official.files["image_generator"], base, classes, image_width, aspect
        )
    try:
        config = config_from_dict(values)
    except ConfigError as exc:
        raise CheckpointError(f"{directory}: {exc}") from None
    parts = networks(config, init=False)
    load_state_into(parts["generator"], g.state_dict(), official.files["layout_generator"])
    kept = {"generator": parts["generator"], "schedule": parts["schedule"], "mixture": parts["mixture"]}
    parts["schedule"].finish()
    if d is not None:
        load_state_into(parts["discriminator"], d.state_dict(), official.files["layout_discriminator"])
        kept["discriminator"] = parts["discriminator"]
    if official.image_generator is not None:
        load_state_into(parts["image_generator"], official.image_generator.state_dict(), official.files["image_generator"])
        kept["image_generator"] = parts["image_generator"]
    provenance = {"converted_from": "official Semantic Palette checkpoints", "files": sorted(p.name for p in official.files.values())}
    return SpadeModel.from_parts(config, kept, provenance).eval()


def write_official(model, directory: Path) -> list[Path]:
    """A palette model → ``seg_g_net_<res>.pth`` (+ ``seg_d_net_<res>.pth``, and ``img_g_net_0.pth``
    for an image generator the model carries), res = the layouts' resolution."""
    from spadekit.models.generator import SPADEGenerator

    if model.config.method != "palette":
        raise ConfigError(f"to-semantic-palette needs a palette model (this one is {model.config.method})")
    res = model.config.section("palette").last_res
    schedule = model.extras.get("schedule")
    if schedule is not None and not schedule.done:
        res = schedule.res
    image = model.extras.get("image_generator")
    return export_official(
        directory, model.generator, model.discriminator, image if isinstance(image, SPADEGenerator) else None, seg_n=res
    )


def detect_official(directory: Path) -> bool:
    try:
        return bool(find_checkpoints(directory).get(LABELS["layout_generator"]))
    except CheckpointError:
        return False


register_format(
    CheckpointFormat(
        name="semantic-palette",
        method="palette",
        description="valeoai/SemanticPalette layout generator and critic (+ its GauGAN image generator)",
        files="seg_g_net_<n>.pth (+ seg_d_net_<n>.pth, img_g_net_<epoch>.pth; the largest n; _latest_net_ names too)",
        read=read_official,
        detect=detect_official,
        write=write_official,
        default_preset="by class count: palette-cityscapes (35), palette-celebamask-hq (19), else palette-custom",
    )
)

__all__ = ["read_official", "write_official", "detect_official"]
