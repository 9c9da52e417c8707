"""The training loop: G step, D step, optimisers, precision, EMA, checkpoints and reports.

The trainer knows nothing of any method's internals and never reads a config: it receives the
networks by part name, which of them each optimiser updates, a factory for the objective (the
losses) and a batch preparer, all resolved by :func:`spadekit.training.setup.build_trainer`.
Per iteration the generator runs once by default: its fake images feed the G step (D frozen) and
then, detached, the D step. With gradient accumulation each micro-batch does both backward passes
before the two optimiser steps, so nothing is computed twice and only one micro-batch's
activations are alive. ``regenerate_fakes`` reproduces the official order instead (G update first,
then a D step on fakes from the updated generator).
"""

from __future__ import annotations

import contextlib
import fnmatch
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Collection, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate

from spadekit.errors import CheckpointError, SpadekitError
from spadekit.batch import Batch, Objective
from spadekit.training import checkpoint as ckpt
from spadekit.training.distributed import (
    DistEnv,
    all_true,
    convert_sync_batchnorm,
    gather_objects,
    local_batchnorm,
    no_sync,
    wrap_ddp,
)
from spadekit.training.ema import EMA, release_provenance
from spadekit.training.monitor import Silent
from spadekit.training.optim import decayed_lr
from spadekit.training.sampling import EpochSampler, SeededSamples

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(SpadekitError):
    """A loss became NaN or infinite: the run stops before the optimiser step, keeping the last good checkpoint."""

    exit_code = 3


def matches_any(name: str, patterns: Collection[str]) -> bool:
    """True when ``name`` matches one of the shell-style ``patterns`` (``train.trainable``)."""
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class LoopOptions:
    """The resolved numbers of a run (derived from the config by :func:`~spadekit.training.setup.loop_options`)."""

    total_steps: int
    """Generator updates to reach (the run resumes towards this)."""
    steps_per_epoch: int
    micro_batch: int
    """Samples per process per forward pass."""
    grad_accum: int
    global_batch: int
    epochs: int
    epochs_decay: int
    lr_G: float
    lr_D: float
    betas: tuple[float, float]
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    ema_decay: float = 0.0
    ema_warmup: bool = True
    ema_refresh_batches: int = 0
    regenerate_fakes: bool = False
    seed: int = 0
    frozen: tuple[str, ...] = ()
    """Parts no optimiser updates (``train.frozen``)."""
    trainable: tuple[str, ...] = ()
    """Name patterns of the only parameters trained (``train.trainable``; empty: all of the parts not frozen)."""
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 50
    image_every: int = 500


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` leaves behind."""

    step: int
    checkpoint: Path | None
    model_dir: Path | None
    last_losses: dict[str, float] = field(default_factory=dict)


def count_parameters(network: nn.Module | None) -> int:
    return 0 if network is None else sum(p.numel() for p in network.parameters())


def seed_everything(seed: int) -> None:
    """Seed torch (all devices), NumPy and ``random``."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


class Trainer:
    """Trains a two-player GAN (any method) on one process of a (possibly one-process) world.

    Args:
        options: the loop's resolved numbers.
        env: this process's rank, world size and device.
        run_dir: where checkpoints, logs, gallery and the release model go (rank 0 writes).
        networks: the networks by part name (``generator`` and ``discriminator`` at least), on CPU,
            freshly built or loaded for fine-tuning. Their state dicts are what checkpoints hold.
        optimized: ``{"G": part names, "D": part names}``: what each Adam optimiser updates; the D
            parts are frozen during the G step.
        make_objective: ``(networks as the step runs them) -> objective``. Called twice: once with
            the D parts unwrapped (the G step only reads them) and once as the D step runs them.
        prepare_batch: ``(collated items, device, non_blocking) -> Batch``.
        dataset: training items (the batch preparer reads them).
        preview: a few fixed items for the image grids (empty: no grids).
        visualize_labels: ``(collated preview items) -> (N, 3, H, W)`` label pictures in [-1, 1].
        monitor: reporting (rank 0) or :class:`Silent`.
        make_loader: ``(dataset, micro_batch, sampler) -> DataLoader``.
        save_release: ``(networks, directory, provenance) -> directory``: writes the release model
            (``provenance`` says which generator weights were saved and after how many steps).
        record: a JSON-able description of the run (its config) stored in every checkpoint.
        check_resume: ``(checkpoint state, its path)``; raises CheckpointError when the checkpoint
            was written by an incompatible run (other model, batch layout, seed or dataset size).
        sync_batchnorm: parts whose batch norms become sync batch norms under DDP.
    """

    def __init__(
        self,
        *,
        options: LoopOptions,
        env: DistEnv,
        run_dir: Path,
        networks: dict[str, nn.Module],
        optimized: dict[str, Collection[str]],
        make_objective: Callable[[dict[str, nn.Module]], Objective],
        prepare_batch: Callable[[dict[str, Any], torch.device, bool], Batch],
        dataset: Dataset,
        preview: list[dict[str, Any]],
        visualize_labels: Callable[[dict[str, Any]], torch.Tensor],
        monitor: Silent,
        make_loader: Callable[..., Any],
        save_release: Callable[[dict[str, nn.Module], Path, dict[str, Any]], Path],
        record: dict[str, Any],
        check_resume: Callable[[dict[str, Any], Path], None],
        sync_batchnorm: Collection[str] = (),
    ):
        if "generator" not in networks or "discriminator" not in networks:
            raise ValueError("the trainer needs a 'generator' and a 'discriminator'")
        self.options = options
        self.env = env
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.device = env.device
        self.step = 0
        self.last_checkpoint: Path | None = None
        self.record = record
        self._prepare = prepare_batch
        self._visualize = visualize_labels
        self._save_release = save_release
        self._check_resume = check_resume
        # Frozen parts (checked by setup.check_frozen): out of both optimisers, without gradients, in
        # eval mode; no D step when all of D is frozen.
        self.frozen = frozenset(options.frozen)

        # -- networks (raw modules: their state dicts are what checkpoints and releases hold)
        self.networks: dict[str, nn.Module] = {}
        for name, net in networks.items():
            if env.distributed and name in sync_batchnorm:
                net = convert_sync_batchnorm(net, self.device)
            net = net.to(self.device)
            if options.channels_last:
                net = net.to(memory_format=torch.channels_last)
            if name in self.frozen:
                # Eval mode: a frozen part's batch norms use (and keep) their running statistics, as at inference.
                self.networks[name] = net.requires_grad_(False).eval()
            else:
                self.networks[name] = net.train()
                if options.trainable:
                    for parameter_name, parameter in net.named_parameters():
                        parameter.requires_grad_(matches_any(f"{name}.{parameter_name}", options.trainable))
        self.G = self.networks["generator"]
        # The EMA copy is taken before any forward pass (spectral norm's cached weight cannot be deep-copied after one).
        self.ema = EMA(self.G, options.ema_decay, options.ema_warmup) if options.ema_decay > 0 else None

        # -- optimisers
        fused = self.device.type == "cuda"
        self.groups = {key: [n for n in names if n in self.networks and n not in self.frozen] for key, names in optimized.items()}
        params = {key: [p for n in names for p in self.networks[n].parameters() if p.requires_grad] for key, names in self.groups.items()}
        self.opt_G = torch.optim.Adam(params["G"], lr=options.lr_G, betas=options.betas, fused=fused or None)
        # No D step when every D part is frozen (a phase that trains only the style encoder).
        self.opt_D = (torch.optim.Adam(params["D"], lr=options.lr_D, betas=options.betas, fused=fused or None)
                      if params["D"] else None)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.precision == "fp16")

        # -- DDP wrappers and compiled callables (they share the raw modules' parameters)
        # Only what an optimiser updates is wrapped: DDP refuses modules without trainable parameters
        # (state parts such as a schedule or a fitted mixture, frozen networks).
        optimised = {n for names in self.groups.values() for n in names
                     if any(p.requires_grad for p in self.networks[n].parameters())}
        running = {name: wrap_ddp(net, env) if name in optimised else net for name, net in self.networks.items()}
        self._sync = {key: [running[n] for n in names] for key, names in self.groups.items()}
        # The G step reaches D's weights without DDP: D is frozen there.
        for_g = {**running, **{n: self.networks[n] for n in self.groups["D"]}}
        if options.compile:
            running = {name: torch.compile(net) for name, net in running.items()}
            for_g = {name: torch.compile(net) for name, net in for_g.items()}
        self.objective_G = make_objective(for_g)
        self.objective_D = make_objective(running)

        # -- data
        self.dataset = dataset
        self.sampler = EpochSampler(
            dataset, env.world_size, env.rank, options.seed, options.micro_batch, options.steps_per_epoch * options.grad_accum
        )
        self.loader = make_loader(SeededSamples(dataset, options.seed), options.micro_batch, self.sampler)
        self.preview = preview

    @property
    def D(self) -> nn.Module:
        """The discriminator (raw module)."""
        return self.networks["discriminator"]

    @property
    def E(self) -> nn.Module | None:
        """The style encoder, or None."""
        return self.networks.get("encoder")

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """This process's view of the training state (RNG of every process is added by :meth:`checkpoint`).

        Each network's state dict sits under its part name (``generator``, ``discriminator`` ...),
        listed in ``parts``."""
        epoch, position = divmod(self.step, self.options.steps_per_epoch)
        return {
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": position * self.options.grad_accum,
            "steps_per_epoch": self.options.steps_per_epoch,
            "world_size": self.env.world_size,
            "parts": list(self.networks),
            **{name: net.state_dict() for name, net in self.networks.items()},
            "optimizer_G": self.opt_G.state_dict(),
            "optimizer_D": self.opt_D.state_dict() if self.opt_D is not None else None,
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "config": self.record,
        }

    def load_state(self, state: dict[str, Any], source: Path) -> None:
        """Restore a checkpoint written by :meth:`checkpoint` (same model, batch layout and seed)."""
        from spadekit.release import load_state_into

        self._check_resume(state, source)
        for name, net in self.networks.items():
            if not isinstance(state.get(name), dict):
                raise CheckpointError(f"{source}: has no {name} state but this run trains one")
            load_state_into(net, state[name], source)
        try:
            self.opt_G.load_state_dict(state["optimizer_G"])
            if self.opt_D is not None:
                self.opt_D.load_state_dict(state["optimizer_D"])
            self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                if state.get("ema") is None:
                    raise CheckpointError(f"{source}: has no EMA generator but train.ema_decay > 0")
                self.ema.load_state_dict(state["ema"], updates=int(state["step"]))
        except (KeyError, ValueError, RuntimeError, TypeError) as exc:
            raise CheckpointError(f"{source}: optimiser or EMA state does not fit (was train.frozen changed?)  ({str(exc).splitlines()[0]})") from None
        self.step = int(state["step"])
        rng = state.get("rng") or []
        if len(rng) == self.env.world_size:
            ckpt.restore_rng(rng[self.env.rank], self.device)
        else:
            warnings.warn(
                f"{source}: saved by {len(rng)} process(es), now {self.env.world_size}: random streams are reseeded "
                "(data order is unchanged)",
                stacklevel=2,
            )
            seed_everything(self.options.seed + 1000 * self.step + self.env.rank)

    def checkpoint(self) -> Path | None:
        """Write the training state (rank 0) and the release model beside it. Collective under DDP."""
        rng = gather_objects(ckpt.capture_rng(self.device), self.env)
        if not self.env.is_main:
            return None
        state = self.state()
        state["rng"] = rng
        self.last_checkpoint = ckpt.save_checkpoint(state, self.run_dir, self.step, self.options.keep_checkpoints)
        self.save_release()
        return self.last_checkpoint

    def save_release(self) -> Path:
        """``RUN_DIR/model``: the release format, with the EMA generator when EMA is on."""
        parts = dict(self.networks)
        provenance = release_provenance(self.options.ema_decay, self.options.ema_warmup, self.step)
        if self.ema is not None:
            self._refresh_ema_statistics()
            parts["generator"] = self.ema.module
            if self.options.ema_refresh_batches:
                provenance["batchnorm_refreshed_over_batches"] = self.options.ema_refresh_batches
        return self._save_release(parts, self.run_dir / "model", provenance)

    @torch.no_grad()
    def _refresh_ema_statistics(self) -> None:
        """Run the EMA generator in train mode over a few training batches so that its batch-norm
        statistics are its own (what OASIS does before every use of its EMA generator). The batches
        and the noise are seeded by the step; the training's random streams are not touched."""
        count = self.options.ema_refresh_batches
        if count <= 0 or self.ema is None or "generator" in self.frozen:
            return
        generator = self.ema.module
        devices = [self.device] if self.device.type == "cuda" else []
        # Rank 0 alone saves, so the refresh must not wait on the other processes (sync batch norm).
        with torch.random.fork_rng(devices=devices), local_batchnorm(generator):
            torch.manual_seed(self.options.seed + self.step)
            order = torch.randperm(len(self.dataset)).tolist()  # type: ignore[arg-type]
            samples = SeededSamples(self.dataset, self.options.seed + self.step)
            size = self.options.micro_batch
            generator.train()
            for start in range(0, min(count * size, len(order)), size):
                raw = default_collate([samples[(0, i)] for i in order[start : start + size]])
                with self._autocast():
                    self.objective_G.sample(self._batch(raw), generator)
            generator.eval()

    # ------------------------------------------------------------------ loop

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.options.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _batch(self, raw: dict[str, Any]) -> Batch:
        batch = self._prepare(raw, self.device, self.device.type == "cuda")
        if self.options.channels_last:
            batch = batch.to_memory_format(torch.channels_last)
        return batch

    def set_learning_rates(self, epoch: int) -> tuple[float, float]:
        o = self.options
        lr_G = decayed_lr(o.lr_G, epoch, o.epochs, o.epochs_decay)
        lr_D = decayed_lr(o.lr_D, epoch, o.epochs, o.epochs_decay)
        for group in self.opt_G.param_groups:
            group["lr"] = lr_G
        for group in self.opt_D.param_groups if self.opt_D is not None else ():
            group["lr"] = lr_D
        return lr_G, lr_D

    def _freeze_D(self, frozen: bool) -> None:
        for name in self.groups["D"]:
            self.networks[name].requires_grad_(not frozen)

    def train_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One generator update and one discriminator update over ``grad_accum`` micro-batches.

        Returns the loss terms (detached, averaged over micro-batches). Raises
        :class:`NonFiniteLossError` before any weight changes when a loss is NaN or infinite.
        """
        accum = self.options.grad_accum
        regenerate = self.options.regenerate_fakes
        self.opt_G.zero_grad(set_to_none=True)
        if self.opt_D is not None:
            self.opt_D.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}

        def add(terms: dict[str, torch.Tensor]) -> None:
            for name, value in terms.items():
                value = value.detach().float() / accum
                totals[name] = totals[name] + value if name in totals else value

        micro_batches = [self._batch(next(batches)) for _ in range(accum)] if regenerate else None
        for micro in range(accum):
            batch = micro_batches[micro] if micro_batches else self._batch(next(batches))
            hold = micro < accum - 1
            # G step: D's weights are frozen, so backward computes no D weight gradients.
            self._freeze_D(True)
            with no_sync(self._sync["G"], hold):
                with self._autocast():
                    g_total, g_terms, carry = self.objective_G.generator_losses(batch)
                self.scaler.scale(g_total / accum).backward()
            self._freeze_D(False)
            add(g_terms)
            if regenerate or self.opt_D is None:
                continue
            # D step on the same fake images, detached inside the objective.
            with no_sync(self._sync["D"], hold):
                with self._autocast():
                    d_total, d_terms = self.objective_D.discriminator_losses(batch, carry)
                self.scaler.scale(d_total / accum).backward()
            add(d_terms)
        if regenerate:
            # The official order: update G, then train D on fakes of the updated G.
            self._check_finite(totals)
            self.scaler.step(self.opt_G)
            for micro, batch in enumerate(micro_batches if self.opt_D is not None else []):
                with no_sync(self._sync["D"], micro < accum - 1):
                    with self._autocast():
                        d_total, d_terms = self.objective_D.discriminator_losses(batch, None)
                    self.scaler.scale(d_total / accum).backward()
                add(d_terms)
            self._check_finite(totals)
            if self.opt_D is not None:
                self.scaler.step(self.opt_D)
        else:
            self._check_finite(totals)
            self.scaler.step(self.opt_G)
            if self.opt_D is not None:
                self.scaler.step(self.opt_D)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.G)
        after_step = getattr(self.objective_G, "after_step", None)
        if after_step is not None:
            after_step()  # e.g. a progressive schedule; its state lives in a part, so checkpoints hold it
        return totals

    def _check_finite(self, totals: dict[str, torch.Tensor]) -> None:
        finite = bool(torch.isfinite(torch.stack(list(totals.values()))).all())
        if not all_true(finite, self.env):
            shown = ", ".join(f"{k}={float(v):.4g}" for k, v in totals.items())
            last = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} ({shown}); training stopped before the update, {last} "
                "(try a lower train.lr, train.precision=fp32 or bf16)"
            )

    @torch.no_grad()
    def preview_images(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(label pictures, synthesized, real), each (N, 3, H, W) in [-1, 1], from the fixed preview items.

        Uses the EMA generator when there is one, in eval mode. The random streams are forked, so
        previews never change the training's random numbers or statistics.
        """
        raw = default_collate(self.preview)
        batch = self._batch(raw)
        generator = self.ema.module if self.ema is not None else self.G
        was_training = generator.training
        generator.eval()
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(0)
            with self._autocast():
                fake = self.objective_G.sample(batch, generator)
        generator.train(was_training)
        return self._visualize(raw), fake.float().cpu(), batch.image.float().cpu()

    def fit(self) -> TrainResult:
        """Train until ``options.total_steps`` generator updates, checkpointing on the way."""
        o = self.options
        self.monitor.start(self.step, o.total_steps)
        last_terms: dict[str, float] = {}
        sums: dict[str, torch.Tensor] = {}
        count = 0
        try:
            while self.step < o.total_steps:
                epoch, position = divmod(self.step, o.steps_per_epoch)
                lr_G, lr_D = self.set_learning_rates(epoch)
                self.sampler.set_epoch(epoch, position * o.grad_accum)
                batches = iter(self.loader)
                for _ in range(position, o.steps_per_epoch):
                    if self.step >= o.total_steps:
                        break
                    terms = self.train_step(batches)
                    self.step += 1
                    count += 1
                    for name, value in terms.items():
                        sums[name] = sums[name] + value if name in sums else value
                    self.monitor.advance(self.step)
                    end_of_epoch = self.step % o.steps_per_epoch == 0
                    final = self.step == o.total_steps
                    if self.step % o.log_every == 0 or final:
                        last_terms = self._log(sums, count, epoch, lr_G, lr_D)
                        sums, count = {}, 0
                    if self.step % o.image_every == 0 or end_of_epoch or final:
                        if self.env.is_main and self.preview:
                            self.monitor.images(self.step, *self.preview_images())
                    if self.step % o.checkpoint_every == 0 or final:
                        self.checkpoint()
                del batches
            if self.env.is_main and not (self.run_dir / "model" / "config.json").is_file():
                self.save_release()  # resumed at the very end: make sure the release model exists
        finally:
            self.monitor.close()
        model_dir = self.run_dir / "model" if self.env.is_main else None
        return TrainResult(self.step, self.last_checkpoint, model_dir, last_terms)

    def _log(self, sums: dict[str, torch.Tensor], count: int, epoch: int, lr_G: float, lr_D: float) -> dict[str, float]:
        if not sums:
            return {}
        names = sorted(sums)
        stacked = torch.stack([sums[n] for n in names]) / max(count, 1)
        if self.env.distributed:
            import torch.distributed as dist

            dist.all_reduce(stacked)
            stacked /= self.env.world_size
        values = dict(zip(names, stacked.tolist()))
        self.monitor.scalars(self.step, {**values, "epoch": epoch, "lr_G": lr_G, "lr_D": lr_D})
        return values
