"""Export: ONNX (run with onnxruntime on CPU) and TorchScript files reproduce the PyTorch generator."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from spadekit.cli import main
from spadekit.inference import one_hot
from spadekit.release import SpadeModel

from helpers import assert_lively, lively_model


def tiny_model(**options) -> SpadeModel:
    return lively_model("custom", {"label_nc": 5, "ngf": 8, "width": 64, "spade_hidden": 16, "norm_G": "batch", **options})


def inputs_for(model: SpadeModel, batch: int = 3) -> tuple[torch.Tensor, ...]:
    m = model.config.model
    classes = m.label_nc + int(m.contain_dontcare)
    index = torch.randint(0, classes, (batch, 16, 16)).repeat_interleave(4, 1).repeat_interleave(4, 2)
    edges = (torch.rand(batch, 1, 64, 64) < 0.2).float() if m.use_instance else None
    semantics = one_hot(index, classes, edges, torch.float32)
    return (semantics, torch.randn(batch, m.z_dim)) if m.use_vae else (semantics,)


MODELS = {
    "instance + don't-care": {"use_instance": True, "contain_dontcare": True},
    "VAE": {"use_vae": True},
    "VAE, latent in every SPADE layer": {"use_vae": True, "latent_spade": True},
}


@pytest.mark.parametrize("options", list(MODELS.values()), ids=list(MODELS))
def test_onnx_export_runs_in_onnxruntime_like_pytorch(tmp_path, options):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    model = tiny_model(**options)
    model.save(tmp_path / "model")
    out = tmp_path / "g.onnx"
    assert main(["export", str(tmp_path / "model"), "--format", "onnx", "--out", str(out)]) == 0
    inputs = inputs_for(model, batch=3)  # a batch size other than the one traced: the batch axis is dynamic
    with torch.no_grad():
        expected = model.generator(*inputs)
    assert_lively(expected)
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    assert names == (["semantics", "z"] if model.config.model.use_vae else ["semantics"])
    got = session.run(["image"], {n: t.numpy() for n, t in zip(names, inputs)})[0]
    assert got.shape == (3, 3, 64, 64)
    assert abs(torch.from_numpy(got) - expected).max() < 1e-4
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    info = json.loads(meta["spadekit"])
    assert info["inputs"]["semantics"] == ["N", model.config.model.semantic_nc, 64, 64]
    assert info["label_nc"] == 5


@pytest.mark.parametrize("options", list(MODELS.values()), ids=list(MODELS))
def test_torchscript_export_reproduces_pytorch(tmp_path, options):
    model = tiny_model(**options)
    model.save(tmp_path / "model")
    out = tmp_path / "g.pt"
    assert main(["export", str(tmp_path / "model"), "--format", "torchscript", "--out", str(out), "--no-check"]) == 0
    inputs = inputs_for(model, batch=2)
    with torch.no_grad():
        expected = model.generator(*inputs)
    extra = {"spadekit.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = torch.jit.load(str(out), _extra_files=extra)
    with torch.no_grad():
        got = loaded(*inputs)
    assert_lively(expected)
    assert (got - expected).abs().max() < 1e-4
    assert json.loads(extra["spadekit.json"])["inputs"]["semantics"][1] == model.config.model.semantic_nc


def test_export_at_another_size_and_its_limits(tmp_path, capsys):
    model = tiny_model()
    model.save(tmp_path / "model")
    out = tmp_path / "wide.pt"
    assert main(["export", str(tmp_path / "model"), "--format", "torchscript", "--size", "128x64", "--out", str(out), "--no-check"]) == 0
    semantics = one_hot(torch.zeros(1, 64, 128, dtype=torch.long), 5, None, torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert torch.jit.load(str(out))(semantics).shape == (1, 3, 64, 128)
    vae = tiny_model(use_vae=True)
    vae.save(tmp_path / "vae")
    assert main(["export", str(tmp_path / "vae"), "--format", "onnx", "--size", "128x64", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "VAE" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["export", str(tmp_path / "model"), "--format", "onnx", "--size", "100x64", "--out", str(tmp_path / "y.onnx")]) == 2
    assert "multiples of 32" in capsys.readouterr().err
