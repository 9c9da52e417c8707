"""BachGAN retrieval: class-pooled IoU ranking, the memory-bank file (hash, atomic write, errors),
composing the retrieved layouts, and the generator/objective on tiny configurations."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from spadekit.errors import DataError
from spadekit.methods.bachgan.boxes import Box
from spadekit.methods.bachgan.retrieval import MemoryBank, build_bank, compose_retrieved, compose_semantics

# 8×8 layouts, 4 classes; the query is one class-2 box over rows 0-3, cols 0-3 (16 pixels).
QUERY = [Box(2, 0, 0, 4, 4)]


def layout(fill: int, class2: tuple[slice, slice] | None = None, class3: tuple[slice, slice] | None = None) -> torch.Tensor:
    label = torch.full((8, 8), fill, dtype=torch.int64)
    if class2:
        label[class2] = 2
    if class3:
        label[class3] = 3
    return label


ENTRIES = [
    ("none.png", layout(0)),  # no class 2: score 0
    ("half.png", layout(1, (slice(0, 4), slice(2, 6)))),  # 8 shared of 16 + 16 - 8 = 24: 1/3
    ("same.png", layout(0, (slice(0, 4), slice(0, 4)))),  # 1
    ("big.png", layout(0, (slice(0, 8), slice(0, 8)))),  # 16 / 64: 1/4
    ("half-too.png", layout(0, (slice(2, 6), slice(0, 4)), (slice(6, 8), slice(0, 8)))),  # 1/3, after half.png
]


@pytest.fixture
def bank() -> MemoryBank:
    return build_bank(ENTRIES, num_classes=4, progress=False, source={"what": "unit test"})


def test_scores_are_the_class_pooled_iou(bank):
    scores = bank.scores(QUERY, 8, 8)
    assert scores.tolist() == pytest.approx([0.0, 1 / 3, 1.0, 0.25, 1 / 3])
    # Pooling over classes: sums of intersections over sums of unions, not a mean of IoUs.
    two_classes = [Box(2, 0, 0, 4, 4), Box(3, 0, 6, 8, 8)]
    assert float(bank.scores(two_classes, 8, 8)[4]) == pytest.approx((8 + 16) / ((16 + 16 - 8) + (16 + 16 - 16)))
    # Classes pooled = F, given explicitly (the official F: object classes of the query's full map).
    assert float(bank.scores(QUERY, 8, 8, classes=[2, 3])[4]) == pytest.approx(8 / (24 + 16))


def test_retrieve_ranks_best_first_ties_in_bank_order_and_skips_excluded(bank):
    matches = bank.retrieve(QUERY, 8, 8, k=3)
    assert [m.name for m in matches] == ["same.png", "half.png", "half-too.png"]
    assert matches[0].index == 2 and matches[0].score == pytest.approx(1.0)
    assert [m.name for m in bank.retrieve(QUERY, 8, 8, k=2, exclude={"same.png"})] == ["half.png", "half-too.png"]
    with pytest.raises(DataError, match="5 usable entries, 6 are needed"):
        bank.retrieve(QUERY, 8, 8, k=6)


def test_boxes_on_another_canvas_are_scaled_to_the_bank(bank):
    assert bank.scores([Box(2, 0, 0, 8, 8)], 16, 16).tolist() == pytest.approx(bank.scores(QUERY, 8, 8).tolist())


def test_layouts_are_resized_with_nearest(bank):
    maps = bank.layouts([2, 0], 16, 16)
    assert maps.shape == (2, 16, 16) and maps.dtype == torch.int64
    assert torch.equal(maps[0], ENTRIES[2][1].repeat_interleave(2, 0).repeat_interleave(2, 1))


def test_bank_file_round_trip_and_documented_hash(bank, tmp_path):
    path = bank.save(tmp_path / "bank.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["bank.safetensors"]  # no temporary file left
    loaded = MemoryBank.load(path)
    assert loaded.names == [name for name, _ in ENTRIES] and loaded.num_classes == 4
    assert torch.equal(loaded.labels, bank.labels) and loaded.labels.dtype == torch.uint8
    assert torch.equal(loaded.histograms[2], torch.tensor([48, 0, 16, 0]))
    assert loaded.source == {"what": "unit test"}
    # The hash, recomputed from the module docstring's recipe.
    header = json.dumps({"names": loaded.names, "num_classes": 4, "shape": [5, 8, 8]}, sort_keys=True, separators=(",", ":"))
    stacked = torch.stack([label for _, label in ENTRIES]).to(torch.uint8).numpy().tobytes()
    assert loaded.content_hash == hashlib.sha256(header.encode() + stacked).hexdigest() == bank.content_hash


def test_hash_depends_on_the_indexed_data():
    changed = [(name, label.clone()) for name, label in ENTRIES]
    changed[0][1][0, 0] = 3
    renamed = [(name + "x", label) for name, label in ENTRIES]
    hashes = {build_bank(e, 4, progress=False).content_hash for e in (ENTRIES, changed, renamed)}
    assert len(hashes) == 3
    assert build_bank(ENTRIES, 4, progress=False).content_hash == build_bank(list(ENTRIES), 4, progress=False).content_hash


def test_edited_or_foreign_files_are_refused(bank, tmp_path):
    path = bank.save(tmp_path / "bank.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors["labels"][0, 0, 0] = 1
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(DataError, match="does not match its hash"):
        MemoryBank.load(path)
    save_file(tensors, str(path))
    with pytest.raises(DataError, match="not a BachGAN memory bank"):
        MemoryBank.load(path)
    path.write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable memory bank"):
        MemoryBank.load(path)
    with pytest.raises(DataError, match="memory bank not found"):
        MemoryBank.load(tmp_path / "missing.safetensors")


def test_build_checks_ids_resizes_and_subsets():
    with pytest.raises(DataError, match="bad.png: class id 4 outside 0..3"):
        build_bank([("ok.png", layout(0)), ("bad.png", layout(4))], 4, progress=False)
    small = build_bank(ENTRIES, 4, size=(4, 4), progress=False)
    assert small.size == (4, 4) and torch.equal(small.labels[2].long(), ENTRIES[2][1][::2, ::2])
    quarter = build_bank(ENTRIES * 4, 4, keep=0.25, seed=7, progress=False)
    assert len(quarter) == 5 and quarter.names == build_bank(ENTRIES * 4, 4, keep=0.25, seed=7, progress=False).names
    assert quarter.names != build_bank(ENTRIES * 4, 4, keep=0.25, seed=8, progress=False).names
    many = build_bank([("wide.png", torch.full((1, 2, 2), 300))], 301, progress=False)
    assert many.labels.dtype == torch.int32


def test_compose_retrieved_takes_objects_only_from_the_boxes():
    maps = torch.stack([layout(1, (slice(4, 8), slice(4, 8))), layout(0)])  # candidate 0 has its own car
    box_layout = torch.zeros(4, 8, 8)
    box_layout[3, 0:2, 0:2] = 1
    box_layout[0] = 1  # a background channel, not an object: not copied
    inside = torch.zeros(8, 8, dtype=torch.bool)
    inside[0:2, 0:2] = True
    composed = compose_retrieved(maps, box_layout, inside, foreground=[2, 3]).reshape(2, 4, 8, 8)
    assert composed[:, :, 0:2, 0:2].sum(1).eq(1).all() and composed[:, 3, 0:2, 0:2].eq(1).all()
    outside = ~inside
    assert composed[0, 1][outside].sum() == 64 - 4 - 16  # road outside the box, the car removed
    assert composed[0, 2].sum() == 0  # the retrieved car is gone
    assert composed[1, 0][outside].eq(1).all()
    semantics = compose_semantics([Box(3, 0, 0, 2, 2)], maps, 4, [2, 3], 8, 8)
    assert semantics.shape == (1, 12, 8, 8)


# -------------------------------------------------------------------- tiny networks, end to end


def tiny_generator(**overrides):
    from spadekit.methods.bachgan.generator import BachGANGenerator

    args = dict(semantic_nc=5, ngf=4, width=32, spade_hidden=8, num_retrieved=2) | overrides
    return BachGANGenerator(**args)


def test_generator_interface_and_modes():
    torch.manual_seed(0)
    generator = tiny_generator()
    assert generator.latent_dim is None and generator.spatial_latent is False and generator.in_channels == 15
    semantics = torch.rand(2, 15, 32, 32).round()
    image, seg = generator.forward_with_segmentation(semantics)
    assert image.shape == (2, 3, 32, 32) and seg.shape == (2, 5, 32, 32)
    assert torch.allclose(seg.exp().sum(1), torch.ones(2, 32, 32), atol=1e-5)
    with pytest.raises(ValueError, match=r"expected semantics \(N, 15, H, W\)"):
        generator(torch.zeros(1, 5, 32, 32))
    vae = tiny_generator(use_vae=True, z_dim=6, upsampling="most", width=128)
    assert vae.latent_dim == 6
    big = semantics.repeat_interleave(4, -1).repeat_interleave(4, -2)
    assert vae(big, torch.randn(2, 6)).shape == (2, 3, 128, 128) and vae(big).shape == (2, 3, 128, 128)
    assert "upscore.weight" not in generator.state_dict() and "upscore.weight" in tiny_generator(legacy_layers=True).state_dict()


def test_objective_trains_the_fusion_and_both_networks():
    from spadekit.methods.bachgan.objective import BachGANBatch, BachGANObjective
    from spadekit.models.discriminator import MultiscaleDiscriminator

    torch.manual_seed(0)
    generator = tiny_generator()
    discriminator = MultiscaleDiscriminator(5 + 3, ndf=4, num_D=2, n_layers=2)
    objective = BachGANObjective(generator, discriminator, lambda_seg=1.0)
    batch = BachGANBatch(
        torch.rand(2, 5, 32, 32).round(), torch.rand(2, 10, 32, 32).round(), torch.rand(2, 3, 32, 32) * 2 - 1,
        torch.randint(0, 5, (2, 32, 32)),
    )
    total, terms, carry = objective.generator_losses(batch)
    assert set(terms) == {"G_GAN", "G_feat", "G_seg"}
    total.backward()
    assert generator.encode_shared[0].weight.grad.abs().sum() > 0 and generator.conv_seg.weight.grad.abs().sum() > 0
    d_total, d_terms = objective.discriminator_losses(batch, carry)
    assert set(d_terms) == {"D_fake", "D_real"}
    generator.zero_grad()
    d_total.backward()
    assert generator.encode_shared[0].weight.grad is None or generator.encode_shared[0].weight.grad.abs().sum() == 0
    assert discriminator.discriminator_0.model0[0].weight.grad.abs().sum() > 0
