"""BachGAN: our box layouts, networks and losses reproduce the official code's recorded tensors.

Data-driven over every case folder of ``tests/assets/peers/bachgan/`` (see each case's README.txt:
the tensors were produced by running Cold-Winter/BachGAN). Each case's ``opt.json`` gives the options
the weights cannot tell (output width, aspect ratio, upsampling, losses); everything else is read from
the checkpoints. Tolerance: relative L2 error <= 1e-5 per tensor. Every tensor recorded in ``io.pt`` is
checked by one of these tests (``test_every_recorded_tensor_is_checked`` fails on one that is not).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import fixture_cases
from peer_checks import assert_parity, unpack_bits
from spadekit.methods.bachgan.boxes import draw_box_layout
from spadekit.methods.bachgan.convert import (
    OfficialBachGAN,
    load_official,
    options_from_official,
    read_official,
    save_official,
)
from spadekit.methods.bachgan.extract import (
    ADE20K_OBJECT_CLASSES,
    CITYSCAPES_FOREGROUND,
    ade20k_boxes,
    ade20k_channels,
    cityscapes_boxes,
)
from spadekit.methods.bachgan.objective import BachGANBatch, BachGANObjective, segmentation_loss
from spadekit.methods.bachgan.retrieval import compose_semantics
from spadekit.models.encoder import reparameterize

CASES = fixture_cases("peers", "bachgan")
IDS = [case.name for case in CASES]
SEED = 2024  # the seed the fixture set before every recorded call

INPUT_KEYS = {
    "label_bits", "label_shape", "retrival_label_list_bits", "retrival_label_list_shape", "fine_label",
    "box_save_label", "retrieved_fine_label", "ade_object_classes", "image_u8", "z_eval", "z_train",
}  # fmt: skip
INSTANCE_KEY = re.compile(r"inst", re.IGNORECASE)  # a Cityscapes case's instanceIds maps, whatever their name
HOOK_KEY = re.compile(r"^(?P<module>.+)_(?P<kind>in|out)_(?P<mode>eval|train)(?:_s(?P<stride>\d+))?$")
OUTPUT_KEYS = {
    "eval": re.compile(r"^(G_eval|seg_out_eval(_s\d+)?|fused_seg(_s\d+)?|memory_in(_s\d+)?)$"),
    "train": re.compile(r"^(G_train|seg_out_train(_s\d+)?|after_train_forward_buffers)$"),
    "losses": re.compile(r"^(loss_G_GAN|loss_G_GAN_Feat|loss_segfine|loss_KLD|loss_D_fake|loss_D_real|after_D_train_forward_buffers)$"),
}


def test_fixture_cases_exist():
    assert CASES, "no BachGAN parity case under tests/assets/peers/bachgan/"


def instance_maps(io: dict) -> torch.Tensor:
    keys = [key for key in io if INSTANCE_KEY.search(key)]
    assert keys, "a Cityscapes case needs its instanceIds maps in io.pt to rebuild the boxes"
    return io[keys[0]]


def stride_of(key: str) -> int:
    match = re.search(r"_s(\d+)$", key)
    return int(match.group(1)) if match else 1


def subsample(tensor: torch.Tensor, key: str) -> torch.Tensor:
    step = stride_of(key)
    return tensor[:, :, ::step, ::step]


@dataclass
class Case:
    directory: Path
    opt: dict
    io: dict
    box_layout: torch.Tensor
    retrieved: torch.Tensor
    image: torch.Tensor
    fine_label: torch.Tensor

    @property
    def batch(self) -> BachGANBatch:
        return BachGANBatch(self.box_layout, self.retrieved, self.image, self.fine_label)

    def networks(self) -> OfficialBachGAN:
        """A fresh load of the official files (the fixture loads fresh before every recorded call)."""
        return load_official(
            self.directory,
            width=self.opt["crop_size"],
            aspect_ratio=float(self.opt["aspect_ratio"]),
            upsampling=self.opt["num_upsampling_layers"],
        )

    def latent(self, nets: OfficialBachGAN, mode: str) -> torch.Tensor | None:
        """z as the official model draws it: from the recorded z, else the encoder with the fixture's seed."""
        if f"z_{mode}" in self.io:
            return self.io[f"z_{mode}"]
        torch.manual_seed(SEED)
        if nets.encoder is None:
            assert not nets.generator.use_vae, "a VAE generator without an encoder file or a recorded z"
            return None
        mu, logvar = nets.encoder(self.image)
        return reparameterize(mu, logvar)


@functools.lru_cache(maxsize=None)
def load_case(directory: Path) -> Case:
    io = torch.load(directory / "io.pt", weights_only=True)
    opt = json.loads((directory / "opt.json").read_text())
    image = (io["image_u8"].float() / 255 - 0.5) / 0.5
    return Case(
        directory, opt, io, unpack_bits(io, "label"), unpack_bits(io, "retrival_label_list"), image, io["fine_label"].long()
    )


@pytest.fixture(params=CASES, ids=IDS)
def case(request) -> Case:
    return load_case(request.param)


def test_every_recorded_tensor_is_checked(case):
    unknown = [
        key
        for key in case.io
        if key not in INPUT_KEYS
        and not INSTANCE_KEY.search(key)
        and not HOOK_KEY.match(key)
        and not any(p.match(key) for p in OUTPUT_KEYS.values())
    ]
    assert not unknown, f"io.pt records tensors no test reproduces: {unknown}"


def test_options_agree_with_opt_json(case):
    nets = case.networks()
    official = options_from_official(case.opt)
    inferred = nets.options["generator"]
    for key in ("semantic_nc", "spectral", "spade_kernel", "use_vae"):
        assert inferred[key] == official["generator"][key], key
    assert inferred["norm"] == ("instance" if official["generator"]["norm"] == "instance" else "syncbatch")
    assert inferred["legacy_layers"], "official generators carry the unused legacy layers"
    if "discriminator" in nets.options:
        for key in ("multiscale", "in_channels", "num_D", "n_layers", "norm", "spectral"):
            assert nets.options["discriminator"][key] == official["discriminator"][key], key


def test_box_layout_and_retrieved_layouts_match_official_loader(case):
    """Boxes extracted from the raw maps, drawn and composed with the retrieved maps as the official
    dataset class does: bit-exact."""
    opt, io = case.opt, case.io
    mode = opt["dataset_mode"]
    num_classes = case.box_layout.shape[1]
    height, width = case.box_layout.shape[-2:]
    if mode == "ade20k":
        assert tuple(io["ade_object_classes"].tolist()) == ADE20K_OBJECT_CLASSES
        foreground = ADE20K_OBJECT_CLASSES
        boxes = [ade20k_boxes(label.numpy()) for label in io["fine_label"]]
        maps = [torch.from_numpy(ade20k_channels(m.numpy(), opt["label_nc"])) for m in io["retrieved_fine_label"]]
    elif mode == "cityscapes":
        foreground = CITYSCAPES_FOREGROUND
        boxes = [cityscapes_boxes(instance.numpy().reshape(height, width)) for instance in instance_maps(io)]
        maps = [m.long() for m in io["retrieved_fine_label"]]
    else:
        pytest.fail(f"no official box construction for dataset_mode {mode!r}")
    for index, (image_boxes, image_maps) in enumerate(zip(boxes, maps)):
        semantics = compose_semantics(image_boxes, image_maps, num_classes, foreground, height, width)[0]
        assert torch.equal(semantics[:num_classes], case.box_layout[index]), f"box layout of sample {index}"
        assert torch.equal(semantics[num_classes:], case.retrieved[index]), f"retrieved layouts of sample {index}"
        _, painted = draw_box_layout(image_boxes, num_classes, height, width)
        assert torch.equal(painted, io["box_save_label"][index].long()), f"painted box map of sample {index}"


def test_clean_construction_is_not_the_official_one(case):
    """The fixture tells the two constructions apart, so the check above guards the official quirks."""
    index = 0
    boxes = ade20k_boxes(case.io["fine_label"][index].numpy()) if case.opt["dataset_mode"] == "ade20k" else None
    if boxes is None:
        boxes = cityscapes_boxes(instance_maps(case.io)[index].numpy().reshape(case.box_layout.shape[-2:]))
    clean, _ = draw_box_layout(boxes, case.box_layout.shape[1], *case.box_layout.shape[-2:], construction="onehot")
    assert not torch.equal(clean, case.box_layout[index])


def _capture(generator: torch.nn.Module, keys: list[str], mode: str) -> tuple[dict[str, torch.Tensor], list]:
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for key in keys:
        match = HOOK_KEY.match(key)
        if not match or match["mode"] != mode or match["module"] == "seg":
            continue
        module = generator.get_submodule(match["module"])

        def hook(_module, inputs, output, key=key, kind=match["kind"]):
            captured[key] = (inputs[0] if kind == "in" else output).detach()

        handles.append(module.register_forward_hook(hook))
    return captured, handles


def _check_hooks(case: Case, captured: dict[str, torch.Tensor], mode: str) -> None:
    for key, expected in case.io.items():
        match = HOOK_KEY.match(key)
        if match and match["mode"] == mode and match["module"] != "seg":
            assert key in captured, f"{key}: module {match['module']!r} never ran"
            assert_parity(subsample(captured[key], key), expected, key)


def _guard_not_flat(tensor: torch.Tensor, name: str) -> None:
    assert tensor.std() > 1e-2, f"{name} is flat: the comparison would say little"
    assert (tensor.abs() > 0.99).float().mean() < 0.5, f"{name} is saturated: the comparison would say little"


def test_generator_eval_forward(case):
    nets = case.networks()
    generator = nets.generator.eval()
    semantics = case.batch.semantics
    captured, handles = _capture(generator, list(case.io), "eval")
    with torch.no_grad():
        z = case.latent(nets, "eval")
        fusion = generator.fuse(semantics)
        image, seg = generator.forward_with_segmentation(semantics, z)
    for handle in handles:
        handle.remove()
    _guard_not_flat(case.io["G_eval"], "G_eval")
    assert_parity(image, case.io["G_eval"], "G_eval")
    for key, expected in case.io.items():
        if key.startswith("seg_out_eval"):
            assert_parity(subsample(seg, key), expected, key)
        elif key.startswith("fused_seg"):
            assert_parity(subsample(fusion.fused, key), expected, key)
        elif key.startswith("memory_in") and not HOOK_KEY.match(key):
            assert_parity(subsample(fusion.memory_in, key), expected, key)
    _check_hooks(case, captured, "eval")
    with torch.no_grad():
        assert torch.equal(generator(semantics, z), image), "forward and forward_with_segmentation disagree"


def test_generator_train_forward_and_buffers(case):
    nets = case.networks()
    generator = nets.generator.train()
    captured, handles = _capture(generator, list(case.io), "train")
    with torch.no_grad():
        image, seg = generator.forward_with_segmentation(case.batch.semantics, case.latent(nets, "train"))
    for handle in handles:
        handle.remove()
    assert_parity(image, case.io["G_train"], "G_train")
    for key, expected in case.io.items():
        if key.startswith("seg_out_train"):
            assert_parity(subsample(seg, key), expected, key)
    _check_hooks(case, captured, "train")
    buffers = dict(generator.named_buffers())
    expected_buffers = case.io["after_train_forward_buffers"]
    assert set(expected_buffers) == set(buffers)
    for key, expected in expected_buffers.items():
        if key.endswith("num_batches_tracked"):
            # The official sync batch norm never counts steps (plain batch norm does); the counter is
            # only read with momentum=None, which SPADE never uses.
            if options_from_official(case.opt)["generator"]["norm"] == "batch":
                assert int(buffers[key]) == int(expected), key
            continue
        assert_parity(buffers[key], expected, key)


def _objective(case: Case, nets: OfficialBachGAN, lambda_seg: float | None = None) -> BachGANObjective:
    options = dict(options_from_official(case.opt)["objective"])
    options.pop("lambda_vgg")  # the fixtures record no VGG term (no pretrained weights offline)
    if lambda_seg is not None:
        options["lambda_seg"] = lambda_seg
    return BachGANObjective(nets.generator, nets.discriminator, nets.encoder, vgg=None, **options)


def _generator_step(case: Case, lambda_seg: float | None = None):
    """One official G step on freshly loaded networks in train mode (no gradients)."""
    nets = case.networks()
    for network in (nets.generator, nets.discriminator, nets.encoder):
        if network is not None:
            network.train()
    objective = _objective(case, nets, lambda_seg)
    torch.manual_seed(SEED)
    with torch.no_grad():
        return objective.generator_losses(case.batch)


def test_generator_losses(case):
    assert "loss_G_VGG" not in case.io, "a VGG term needs the VGG19 weights; not supported by this test"
    total, terms, fake = _generator_step(case, lambda_seg=1.0)
    assert_parity(fake, case.io["G_train"], "G_train (in the G step)")
    assert_parity(terms["G_GAN"], case.io["loss_G_GAN"], "loss_G_GAN")
    if "loss_G_GAN_Feat" in case.io:
        assert_parity(terms["G_feat"], case.io["loss_G_GAN_Feat"], "loss_G_GAN_Feat")
    else:
        assert case.opt.get("no_ganFeat_loss"), "no feature-matching loss recorded"
        assert "G_feat" not in terms
    if "loss_KLD" in case.io:
        assert_parity(terms["KLD"], case.io["loss_KLD"], "loss_KLD")
    # The official model computes the seg NLL only with --seg; the fixture records it regardless.
    assert_parity(terms["G_seg"], case.io["loss_segfine"], "loss_segfine")
    assert float(total) == pytest.approx(sum(float(t) for t in terms.values()), rel=1e-6)

    released_total, released_terms, _ = _generator_step(case)
    assert ("G_seg" in released_terms) == bool(case.opt.get("seg"))
    expected = sum(float(terms[k]) for k in terms if k != "G_seg" or case.opt.get("seg"))
    assert float(released_total) == pytest.approx(expected, rel=1e-5)


def test_segmentation_loss_ignores_255(case):
    nets = case.networks()
    with torch.no_grad():
        _, seg = nets.generator.forward_with_segmentation(case.batch.semantics, case.latent(nets, "eval"))
    target = case.fine_label.clone()
    target[:, :8] = 255
    picked = seg.gather(1, case.fine_label[:, None])[:, 0]
    expected = -picked[:, 8:].mean()
    assert float(segmentation_loss(seg, target)) == pytest.approx(float(expected), rel=1e-5)


def test_discriminator_losses_and_buffers(case):
    nets = case.networks()
    generator, discriminator = nets.generator.train(), nets.discriminator.train()
    objective = _objective(case, nets)
    with torch.no_grad():
        fake = generator(case.batch.semantics, case.latent(nets, "train"))
        total, terms = objective.discriminator_losses(case.batch, fake)
    assert_parity(terms["D_fake"], case.io["loss_D_fake"], "loss_D_fake")
    assert_parity(terms["D_real"], case.io["loss_D_real"], "loss_D_real")
    buffers = dict(discriminator.named_buffers())
    for key, expected in case.io["after_D_train_forward_buffers"].items():
        if key.endswith("num_batches_tracked"):
            if options_from_official(case.opt)["discriminator"]["norm"] == "batch":
                assert int(buffers[key]) == int(expected), key
            continue
        assert_parity(buffers[key], expected, key)


def test_official_files_round_trip(case, tmp_path):
    nets = case.networks()
    written = save_official(tmp_path, nets.generator, nets.discriminator, nets.encoder)
    assert [p.name for p in written][:2] == ["latest_net_G.pth", "latest_net_D.pth"]
    for path in written:
        original = torch.load(case.directory / path.name, weights_only=True)
        ours = torch.load(path, weights_only=True)
        assert list(ours) == list(original), f"{path.name}: keys or their order differ"
        for key, value in original.items():
            if key.endswith("num_batches_tracked"):
                continue
            assert torch.equal(ours[key], value), f"{path.name}: {key}"
    again = load_official(tmp_path, width=case.opt["crop_size"], aspect_ratio=float(case.opt["aspect_ratio"]),
                          upsampling=case.opt["num_upsampling_layers"])  # fmt: skip
    with torch.no_grad():
        assert torch.equal(again.generator(case.batch.semantics), nets.generator(case.batch.semantics))


def test_generator_without_legacy_layers_writes_every_official_key(case, tmp_path):
    nets = case.networks()
    options = dict(nets.options["generator"], legacy_layers=False)
    from spadekit.methods.bachgan.generator import BachGANGenerator

    lean = BachGANGenerator(**options)
    state = read_official(case.directory / "latest_net_G.pth")
    lean.load_state_dict({k: v for k, v in state.items() if k in lean.state_dict()})
    assert sum(p.numel() for p in lean.parameters()) < sum(p.numel() for p in nets.generator.parameters())
    (path,) = save_official(tmp_path, lean)
    written = torch.load(path, weights_only=True)
    assert list(written) == list(state)
    for key, value in state.items():
        assert written[key].shape == value.shape, key
    with torch.no_grad():
        assert torch.equal(lean.eval()(case.batch.semantics), nets.generator(case.batch.semantics))
