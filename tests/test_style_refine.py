"""Style refinement (spadekit.style_refine, Pipeline.refine_style, ``--refine-steps``): the latent
is fitted to the style photo through the frozen generator, the weights never change, and the
inputs are checked before any work."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spadekit.cli import main
from spadekit.data.toy import render_scene, scene_seed
from spadekit.errors import ConfigError, DataError
from spadekit.evaluation.style_fidelity import region_means
from spadekit.inference import Pipeline
from spadekit.style_refine import StyleCode, StyleRefinement, check_refine_request, check_refine_steps, refine_latent


class ColourPerClass(torch.nn.Module):
    """A stand-in generator with a known inverse: class ``c``'s pixels take the colour
    ``tanh(A_c z)``; the layout decides where, the latent alone decides the colours."""

    def __init__(self, num_classes: int, latent_dim: int):
        super().__init__()
        self.mix = torch.nn.Parameter(torch.randn(num_classes, 3, latent_dim, generator=torch.Generator().manual_seed(0)) * 0.5)

    def forward(self, index, edges, z):
        colours = torch.tanh(torch.einsum("ckd,nd->nck", self.mix, z))  # (N, C, 3)
        return colours.gather(1, index.flatten(1)[..., None].expand(-1, -1, 3)).view(*index.shape, 3).permute(0, 3, 1, 2)


def stripes(num_classes: int, size: int = 32) -> torch.Tensor:
    return (torch.arange(size)[None, :, None].expand(1, size, size) * num_classes // size).long()


def test_refinement_recovers_the_latent_of_a_photo():
    generator = ColourPerClass(num_classes=4, latent_dim=8)
    index = stripes(4)
    truth = torch.randn(1, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        photo = generator(index, None, truth)
    start = torch.zeros(1, 8)
    before = generator.mix.detach().clone()
    z, trace = refine_latent(generator, index, None, photo, start, 4, StyleRefinement(steps=300, lr=0.05))
    assert len(trace) == 301 and trace[-1] < 0.02 * trace[0]
    with torch.no_grad():
        redrawn = generator(index, None, z)
    # Each stripe's colour, read with numpy from the images, is the photo's.
    ids = index[0].numpy()
    got = region_means(redrawn[0].permute(1, 2, 0).numpy(), ids, 4, min_pixels=1)
    want = region_means(photo[0].permute(1, 2, 0).numpy(), ids, 4, min_pixels=1)
    np.testing.assert_allclose(got, want, atol=0.03)
    assert torch.equal(start, torch.zeros(1, 8))  # the start is not modified in place
    assert torch.equal(generator.mix, before) and generator.mix.grad is None  # the weights are never trained


def test_refinement_works_inside_inference_mode():
    generator = ColourPerClass(num_classes=3, latent_dim=4)
    index = stripes(3, 16)
    with torch.inference_mode():
        photo = generator(index, None, torch.ones(1, 4))
        z, trace = refine_latent(generator, index, None, photo, torch.zeros(1, 4), 3, StyleRefinement(steps=50))
    assert trace[-1] < trace[0]


@pytest.mark.parametrize("value", [-1, 10_001, "ten", "1.5"])
def test_steps_out_of_range_are_refused(value):
    with pytest.raises(ConfigError, match="refine"):
        check_refine_steps(value)


@pytest.mark.parametrize("steps, style, labels, words", [
    (10, False, True, "needs a style photo"),
    (10, True, False, "needs the style photo's label map"),
    (0, True, True, "only used to refine"),
])
def test_refinement_needs_its_inputs(steps, style, labels, words):
    with pytest.raises(ConfigError, match=words):
        check_refine_request(steps, style, labels)
    check_refine_request(0, style, False)  # no refinement, no labels: always fine


# ----------------------------------------------------------------------------- the bundled toy model


@pytest.fixture(scope="module")
def pipe() -> Pipeline:
    torch.set_num_threads(1)
    return Pipeline.from_pretrained("toy")


def scenes(i: int):
    return render_scene(scene_seed(0, i, "val"), 128), render_scene(scene_seed(0, i, "test"), 128)


def colour_error(image: torch.Tensor, photo: np.ndarray, label: np.ndarray, classes: int) -> float:
    """Mean absolute difference of the class colours of a result (tensor in [-1, 1]) and a photo."""
    got = region_means(((image.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).numpy(), label, classes)
    want = region_means(photo / 255.0, label, classes)
    return float(np.nanmean(np.abs(got - want)))


def test_a_refined_style_redraws_its_own_photo_more_closely(pipe):
    classes = len(pipe.class_names)
    weights = [p.detach().clone() for p in pipe.model.generator.parameters()]
    errors_encoder, errors_refined = [], []
    for i in range(4):
        _, style = scenes(i)
        plain = pipe(style.label, style.instance, style=style.image, seed=i, output="tensor")[0]
        refined = pipe(style.label, style.instance, style=style.image, seed=i, output="tensor", refine_steps=40,
                       style_labels=style.label, style_instances=style.instance)[0]
        errors_encoder.append(colour_error(plain, style.image, style.label, classes))
        errors_refined.append(colour_error(refined, style.image, style.label, classes))
    assert all(r < e for r, e in zip(errors_refined, errors_encoder)), (errors_refined, errors_encoder)
    assert np.mean(errors_refined) < 0.8 * np.mean(errors_encoder)
    assert all(torch.equal(p, w) for p, w in zip(pipe.model.generator.parameters(), weights))


def test_a_style_code_draws_what_the_refining_call_draws(pipe):
    layout, style = scenes(5)
    code = pipe.refine_style(style.image, style.label, style.instance, steps=20)
    assert isinstance(code, StyleCode) and code.mu.shape == (1, pipe.latent_dim)
    direct = pipe(layout.label, layout.instance, style=style.image, seed=3, output="tensor", refine_steps=20,
                  style_labels=style.label, style_instances=style.instance)
    again = pipe(layout.label, layout.instance, style=style.image, seed=3, output="tensor", refine_steps=20,
                 style_labels=style.label, style_instances=style.instance)
    from_code = pipe(layout.label, layout.instance, style=code, seed=3, output="tensor")
    encoder_only = pipe(layout.label, layout.instance, style=style.image, seed=3, output="tensor")
    assert torch.equal(direct, again) and torch.equal(direct, from_code)
    assert (direct - encoder_only).abs().mean() > 1e-3  # refinement changed the result


def test_the_pipeline_checks_refinement_inputs(pipe):
    layout, style = scenes(6)
    with pytest.raises(ConfigError, match="label map"):
        pipe(layout.label, style=style.image, refine_steps=5)
    with pytest.raises(ConfigError, match="only used to refine"):
        pipe(layout.label, style=style.image, style_labels=style.label)
    with pytest.raises(ConfigError, match="needs a style photo"):
        pipe(layout.label, refine_steps=5, style_labels=style.label)
    with pytest.raises(DataError, match="64x64 label map for the 128x128 style photo"):
        pipe(layout.label, style=style.image, refine_steps=5, style_labels=style.label[::2, ::2])
    with pytest.raises(DataError, match="style code"):
        pipe(layout.label, style=StyleCode(torch.zeros(1, 3), torch.zeros(1, 3)))


def test_cli_refines_the_style(tmp_path, capsys):
    from PIL import Image

    layout, style = scenes(7)
    Image.fromarray(layout.label).save(tmp_path / "layout.png")
    Image.fromarray(style.image).save(tmp_path / "style.png")
    Image.fromarray(style.label).save(tmp_path / "style_labels.png")
    Image.fromarray(style.label[::2, ::2]).save(tmp_path / "small_labels.png")
    base = ["synthesize", "--model", "toy", "--labels", str(tmp_path / "layout.png"), "--style", str(tmp_path / "style.png"),
            "--device", "cpu"]

    assert main(base + ["--out", str(tmp_path / "a"), "--refine-steps", "20", "--style-labels", str(tmp_path / "style_labels.png")]) == 0
    refined = np.asarray(Image.open(tmp_path / "a" / "layout.png"))
    assert main(base + ["--out", str(tmp_path / "b")]) == 0
    plain = np.asarray(Image.open(tmp_path / "b" / "layout.png"))
    assert np.abs(refined.astype(int) - plain).mean() > 0.5
    # Refined against the style's own label map (given by file), as the Pipeline does it.
    pipe = Pipeline.from_pretrained("toy")
    code = pipe.refine_style(style.image, style.label, steps=20)
    expected = pipe(layout.label, style=code, seed=0)[0]
    assert np.array_equal(refined, np.asarray(expected))
    capsys.readouterr()

    assert main(base + ["--out", str(tmp_path / "c"), "--refine-steps", "20"]) == 2
    assert "--style-labels" in capsys.readouterr().err
    assert main(base + ["--out", str(tmp_path / "d"), "--refine-steps", "20", "--style-labels", str(tmp_path / "small_labels.png")]) == 2
    err = capsys.readouterr().err
    assert "small_labels.png" in err and "same size" in err
    with pytest.raises(SystemExit) as exit_info:  # refused by the parser, like a bad seed
        main(base + ["--out", str(tmp_path / "e"), "--refine-steps", "99999", "--style-labels", str(tmp_path / "style_labels.png")])
    assert exit_info.value.code == 2 and "0..10000" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "cde")  # nothing half-written
