"""Scale-out with PyTorch's own engine: torchrun environment, process groups, DDP and SyncBatchNorm.

One process per GPU (NCCL) or several CPU processes (gloo). ``torchrun`` sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; a plain ``spadekit train`` is a world
of one and never touches ``torch.distributed``.

PyTorch's :class:`torch.nn.SyncBatchNorm` only runs on accelerators. On CPU (gloo) the networks use
:class:`GlobalBatchNorm2d` instead: the same statistics over the global batch, computed with
differentiable all-reduces, so a multi-process CPU run matches one process on the whole batch.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import nn

from spadekit.errors import ConfigError


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits: its rank among ``world_size`` processes and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs and images."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str | None, local_rank: int = 0) -> torch.device:
    """``auto``/None → ``cuda:<local_rank>`` when CUDA is available, else CPU; ``cuda`` → ``cuda:<local_rank>``."""
    name = (name or "auto").lower()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        name = f"cuda:{local_rank}"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: CUDA is not available on this machine (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def setup_distributed(device: str | None = None, timeout_s: float = 1800.0) -> DistEnv:
    """Read torchrun's environment and join the process group (NCCL on CUDA, gloo on CPU).

    Without ``WORLD_SIZE`` > 1 this is a single process and no process group is created.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    resolved = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistEnv(0, 1, 0, resolved)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    if not dist.is_initialized():
        kwargs: dict[str, Any] = {"backend": backend, "timeout": timedelta(seconds=timeout_s)}
        if resolved.type == "cuda":
            kwargs["device_id"] = resolved  # binds NCCL to this GPU, avoiding a guess at the first collective
        dist.init_process_group(**kwargs)
    return DistEnv(rank, world_size, local_rank, resolved)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----------------------------------------------------------------------------- sync batch norm


class _SumOverProcesses(torch.autograd.Function):
    """Sum of a tensor over all processes; its gradient is the sum of the processes' gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone()
        dist.all_reduce(total)
        return total


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """Batch norm whose training statistics cover the global batch of every process (CPU / gloo).

    Two all-reduces per call (sum, then centred sum of squares): the same numbers as one process
    running batch norm on the concatenated batch. The all-reduce is differentiable (:class:`_SumOverProcesses`),
    so autograd sums the statistics' gradients across processes as SyncBatchNorm does.
    Outside training or without a process group it is plain batch norm. State-dict keys are those
    of :class:`~torch.nn.BatchNorm2d`.
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        all_reduce = _SumOverProcesses.apply
        dims = (0, 2, 3)
        x = input.float()
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        count = all_reduce(count)
        mean = all_reduce(x.sum(dims)) / count
        centred = x - mean[None, :, None, None]
        var = all_reduce(centred.square().sum(dims)) / count
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                unbiased = var * (count / (count - 1).clamp(min=1))
                self.running_mean.lerp_(mean.to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), momentum)
        out = centred * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            out = out * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return out.to(input.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm layer of ``module`` → statistics over the global batch.

    CUDA: :meth:`torch.nn.SyncBatchNorm.convert_sync_batchnorm`. CPU: :class:`GlobalBatchNorm2d`
    (PyTorch's SyncBatchNorm refuses CPU tensors). Weights and running statistics are kept.
    """
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    return _swap_batchnorm(module)


@contextlib.contextmanager
def local_batchnorm(module: nn.Module) -> Iterator[nn.Module]:
    """Within the block, the sync batch norms of ``module`` use this process's batch alone.

    For work one process does by itself, such as refreshing the EMA generator's statistics before
    rank 0 saves it: a sync layer in train mode would call a collective the other processes never
    join. Each sync layer is replaced by a plain :class:`~torch.nn.BatchNorm2d` sharing its
    parameters and buffers (so the statistics it gathers land in the original), and put back after.
    """
    swapped: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, (nn.SyncBatchNorm, GlobalBatchNorm2d)):
                local = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, affine=False, track_running_stats=False)
                local.affine, local.track_running_stats = child.affine, child.track_running_stats
                local.weight, local.bias = child.weight, child.bias
                for buffer in ("running_mean", "running_var", "num_batches_tracked"):
                    local.register_buffer(buffer, getattr(child, buffer))
                local.train(child.training)
                setattr(parent, name, local)
                swapped.append((parent, name, child))
    try:
        yield module
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)


def _swap_batchnorm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d) and not isinstance(module, GlobalBatchNorm2d):
        swapped = GlobalBatchNorm2d(
            module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
        )
        swapped.load_state_dict(module.state_dict())
        swapped.train(module.training)
        return swapped
    for name, child in module.named_children():
        new_child = _swap_batchnorm(child)
        if new_child is not child:
            setattr(module, name, new_child)
    return module


# ----------------------------------------------------------------------------- DDP helpers


def wrap_ddp(module: nn.Module, env: DistEnv) -> nn.Module:
    """DistributedDataParallel on this process's device; the module itself in a world of one.

    Parameters and buffers are broadcast from rank 0 when wrapping, so every process starts equal.
    A module that runs only some of its parameters at a time (progressive growing) says so with a
    true ``runs_parameter_subsets`` attribute; DDP then looks for the unused ones every step.
    """
    if not env.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [env.device] if env.device.type == "cuda" else None
    subsets = bool(getattr(module, "runs_parameter_subsets", False))
    return DistributedDataParallel(module, device_ids=device_ids, broadcast_buffers=True, find_unused_parameters=subsets)


def no_sync(modules: list[nn.Module], skip: bool) -> contextlib.AbstractContextManager:
    """Hold back DDP's gradient all-reduce (for all but the last accumulation micro-batch) when ``skip``."""
    stack = contextlib.ExitStack()
    if skip:
        for module in modules:
            if hasattr(module, "no_sync"):
                stack.enter_context(module.no_sync())
    return stack


def all_true(flag: bool, env: DistEnv) -> bool:
    """True on every process when ``flag`` is true on every process (one tiny all-reduce)."""
    if not env.distributed:
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=env.device)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    """Every process's ``obj`` (plain Python / CPU tensors), in rank order."""
    if not env.distributed:
        return [obj]
    gathered: list[Any] = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


@contextlib.contextmanager
def main_first(env: DistEnv) -> Iterator[None]:
    """Run the body on rank 0 first (e.g. creating the run directory), then on the others."""
    if not env.is_main:
        barrier(env)
    yield
    if env.is_main:
        barrier(env)


__all__ = [
    "DistEnv",
    "GlobalBatchNorm2d",
    "all_true",
    "barrier",
    "broadcast_object",
    "cleanup_distributed",
    "convert_sync_batchnorm",
    "gather_objects",
    "main_first",
    "no_sync",
    "resolve_device",
    "setup_distributed",
    "wrap_ddp",
]
