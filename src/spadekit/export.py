"""Export a generator to ONNX or TorchScript for deployment.

The exported graph is the plain eval-mode generator with spectral norm folded into ordinary
weights (so it has no hooks and no power iteration). Its inputs:

``semantics``
    (N, S, H, W) float32 one-hot semantics: channel ``c`` is 1 where the label id is ``c``
    (``S = label_nc`` (+1 don't-care channel, index ``label_nc``) (+1 instance-edge map, last,
    a 0/1 float map where an instance id differs from a 4-neighbour)); H, W = the export size.
``z`` (generators with a latent only: SPADE's VAE, OASIS's noise)
    (N, latent_dim) float32 latent; ``z ~ N(0, I)`` samples a style or a noise, the style
    encoder's ``mu`` fixes one. The same seed gives the same ``z`` as :class:`~spadekit.Pipeline`.
further inputs a generator declares in ``extra_inputs`` (name → channels), e.g. CLADE-ICPE's ``dist``
    (N, 2, H, W) float32 intra-class offsets (:func:`spadekit.data.offsets.intra_class_offsets` of
    the label map), which the exported graph cannot compute itself.

A generator whose input is not one label map declares its channels as ``in_channels`` (BachGAN:
the box layout and the k retrieved layouts, ``(1 + k)·C``, built by
:func:`~spadekit.methods.bachgan.retrieval.compose_semantics`); ``semantics`` then has that many.

Output ``image``: (N, 3, H, W) float32 in [-1, 1]. The batch size N is dynamic.
The model's description (classes, colours, channel layout) travels inside the file: ONNX
``metadata_props`` key ``spadekit``, TorchScript extra file ``spadekit.json``.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from spadekit.errors import ConfigError
from spadekit.release import SpadeModel

FORMATS = ("onnx", "torchscript")


class ExportGenerator(nn.Module):
    """The generator in export form: positional inputs (semantics, then ``z`` when ``latent``, then
    the ``extras`` by name), spectral norm folded."""

    def __init__(self, generator: nn.Module, latent: bool = False, extras: tuple[str, ...] = ()):
        super().__init__()
        self.generator = fold_spectral_norm(copy.deepcopy(generator)).eval()
        self.latent = latent
        self.extras = tuple(extras)

    def forward(self, semantics: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
        z = inputs[0] if self.latent else None
        named = dict(zip(self.extras, inputs[int(self.latent) :]))
        return self.generator(semantics, z, **named)


def fold_spectral_norm(network: nn.Module) -> nn.Module:
    """Replace every spectral-norm hook by the weight it computes in eval mode (in place)."""
    from torch.nn.utils.spectral_norm import SpectralNorm

    from spadekit.fast import plain_weight

    for module in network.modules():
        hooks = [k for k, h in module._forward_pre_hooks.items() if isinstance(h, SpectralNorm)]
        for key in hooks:
            hook = module._forward_pre_hooks[key]
            weight = plain_weight(module)
            del module._forward_pre_hooks[key]
            delattr(module, hook.name)
            del module._parameters[hook.name + "_orig"]
            del module._buffers[hook.name + "_u"]
            del module._buffers[hook.name + "_v"]
            module.register_parameter(hook.name, nn.Parameter(weight, requires_grad=False))
    return network


def latent_dim(model: SpadeModel) -> int | None:
    return getattr(model.generator, "latent_dim", None)


def input_channels(model: SpadeModel) -> int:
    """Channels of the generator's ``semantics``: its ``in_channels`` when it declares them, else the
    one-hot label map's."""
    return int(getattr(model.generator, "in_channels", None) or model.config.model.semantic_nc)


def extra_inputs(model: SpadeModel) -> dict[str, int]:
    """Inputs the generator takes besides semantics and z (name → channels)."""
    return dict(getattr(model.generator, "extra_inputs", None) or {})


def input_names(model: SpadeModel) -> list[str]:
    return ["semantics"] + (["z"] if latent_dim(model) is not None else []) + list(extra_inputs(model))


def describe(model: SpadeModel, size: tuple[int, int]) -> dict:
    """What a deployed file needs to know: input layout, classes and colours."""
    m = model.config.model
    z_dim = latent_dim(model)
    return {
        "format": "spadekit-export",
        "method": model.config.method,
        "inputs": {
            "semantics": ["N", input_channels(model), size[1], size[0]],
            **({"z": ["N", z_dim]} if z_dim is not None else {}),
            **{name: ["N", channels, size[1], size[0]] for name, channels in extra_inputs(model).items()},
        },
        "output": {"image": ["N", 3, size[1], size[0]], "range": [-1, 1]},
        "label_nc": m.label_nc,
        "dontcare_channel": m.label_nc if m.contain_dontcare else None,
        "instance_edge_channel": m.semantic_nc - 1 if m.use_instance else None,
        "class_names": model.class_names,
        "colors": model.colors,
    }


def example_inputs(model: SpadeModel, size: tuple[int, int], batch: int = 1, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """A random valid input (one-hot semantics, ``z`` for generators with a latent, extra inputs in
    [-1, 1]) at ``size``, in :func:`input_names` order."""
    m = model.config.model
    gen = torch.Generator().manual_seed(seed)
    channels = input_channels(model)
    if channels != m.semantic_nc:  # not one label map (BachGAN's composed layouts): any 0/1 maps trace the graph
        semantics = (torch.rand(batch, channels, size[1], size[0], generator=gen) < 0.5).float()
        z_dim = latent_dim(model)
        return (semantics, torch.randn(batch, z_dim, generator=gen)) if z_dim is not None else (semantics,)
    classes = m.label_nc + int(m.contain_dontcare)
    index = torch.randint(0, classes, (batch, 1, size[1], size[0]), generator=gen)
    semantics = torch.zeros(batch, classes, size[1], size[0]).scatter_(1, index, 1.0)
    if m.use_instance:
        semantics = torch.cat([semantics, (torch.rand(batch, 1, size[1], size[0], generator=gen) < 0.1).float()], 1)
    inputs = [semantics]
    z_dim = latent_dim(model)
    if z_dim is not None:
        inputs.append(torch.randn(batch, z_dim, generator=gen))
    for channels in extra_inputs(model).values():
        inputs.append(torch.rand(batch, channels, size[1], size[0], generator=gen) * 2 - 1)
    return tuple(inputs)


def export_model(model: SpadeModel, fmt: str, out: str | Path, size: tuple[int, int] | None = None, opset: int = 17) -> Path:
    """Write ``model``'s generator as ONNX or TorchScript to ``out`` (atomically).

    ``size`` (width, height) defaults to the model size; another size works for non-VAE models
    (see :func:`spadekit.inference.model_at_size`).
    """
    from spadekit.inference import model_at_size
    from spadekit.io import atomic_write

    if fmt not in FORMATS:
        raise ConfigError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    size = tuple(size) if size is not None else tuple(model.output_size)
    model = model_at_size(model, size)
    extras = tuple(extra_inputs(model))
    wrapper = ExportGenerator(model.generator.float().cpu(), latent_dim(model) is not None, extras).eval()
    inputs = example_inputs(model, size)
    meta = json.dumps(describe(model, size))
    out = Path(out)

    def write_onnx(tmp: Path) -> None:
        import onnx

        names = input_names(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated but needs no extra packages
            torch.onnx.export(
                wrapper,
                inputs,
                str(tmp),
                dynamo=False,
                input_names=names,
                output_names=["image"],
                dynamic_axes={**{n: {0: "batch"} for n in names}, "image": {0: "batch"}},
                opset_version=opset,
            )
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = "spadekit", meta
        onnx.save(proto, str(tmp))

    def write_torchscript(tmp: Path) -> None:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # torch.jit is deprecated upstream but still the portable C++ format
            traced = torch.jit.trace(wrapper, inputs, check_trace=False)  # check_export compares outputs instead
            torch.jit.save(traced, str(tmp), _extra_files={"spadekit.json": meta})

    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
        except ImportError:
            raise ConfigError("ONNX export needs the onnx package: pip install 'spadekit[export]'") from None
    atomic_write(out, write_onnx if fmt == "onnx" else write_torchscript)
    return out


def check_export(model: SpadeModel, fmt: str, path: str | Path, size: tuple[int, int] | None = None) -> float:
    """Max abs difference between the exported file's output and PyTorch's on a random input (batch 2)."""
    from spadekit.inference import model_at_size

    size = tuple(size) if size is not None else tuple(model.output_size)
    model = model_at_size(model, size)
    inputs = example_inputs(model, size, batch=2, seed=1)
    names = input_names(model)
    z = inputs[names.index("z")] if "z" in names else None
    named = {name: inputs[names.index(name)] for name in extra_inputs(model)}
    with torch.no_grad():
        reference = model.generator.float().cpu().eval()(inputs[0], z, **named)
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        output = torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = torch.jit.load(str(path))
        with torch.no_grad():
            output = loaded(*inputs)
    return float((output - reference).abs().max())
