"""The training loop: G step, D step, optimisers, precision, EMA, checkpoints and reports.

The trainer knows nothing of SPADE's internals: losses come from
:class:`spadekit.objective.SpadeObjective`, networks from :func:`spadekit.models.build_networks`.
Per iteration the generator runs once: its fake images feed the G step (D frozen) and then, detached,
the D step. With gradient accumulation each micro-batch does both backward passes before the two
optimiser steps, so nothing is computed twice and only one micro-batch's activations are alive.

:func:`build_trainer` is the only function here that reads a :class:`~spadekit.config.Config`.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from spadekit.config import Config
from spadekit.errors import CheckpointError, ConfigError, DataError, SpadekitError
from spadekit.objective import Batch, SpadeObjective, decayed_lr, optimizer_settings, prepare_batch
from spadekit.training import checkpoint as ckpt
from spadekit.training.distributed import (
    DistEnv,
    all_true,
    broadcast_object,
    convert_sync_batchnorm,
    gather_objects,
    no_sync,
    resolve_device,
    wrap_ddp,
)
from spadekit.training.ema import EMA
from spadekit.training.gallery import colorize_labels
from spadekit.training.monitor import Monitor, Silent
from spadekit.training.sampling import EpochSampler, SeededSamples, epoch_layout

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
PREVIEW_SAMPLES = 4


class NonFiniteLossError(SpadekitError):
    """A loss became NaN or infinite: the run stops before the optimiser step, keeping the last good checkpoint."""

    exit_code = 3


@dataclass(frozen=True)
class LoopOptions:
    """The resolved numbers of a run (derived from the config by :func:`build_trainer`)."""

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
    seed: int = 0
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
    """Runs SPADE training on one process of a (possibly one-process) world.

    Args:
        config: the resolved config (written into checkpoints and the release model, and read for
            the batch layout (``model``) and the losses (``loss``) handed to the objective layer).
        options: the loop's resolved numbers.
        env: this process's rank, world size and device.
        run_dir: where checkpoints, logs, gallery and the release model go (rank 0 writes).
        generator, discriminator, encoder: freshly built (or fine-tuning) networks, on CPU.
        vgg: the perceptual loss module, or None.
        dataset: training items ``{label, image, [instance], path}``.
        preview: a few fixed items for the image grids (empty: no grids).
        monitor: reporting (rank 0) or :class:`Silent`.
        make_loader: ``(dataset, micro_batch, sampler) -> DataLoader``.
    """

    def __init__(
        self,
        config: Config,
        options: LoopOptions,
        env: DistEnv,
        run_dir: Path,
        generator: nn.Module,
        discriminator: nn.Module,
        encoder: nn.Module | None,
        vgg: nn.Module | None,
        dataset: Dataset,
        preview: list[dict[str, Any]],
        monitor: Silent,
        make_loader: Callable[..., Any],
    ):
        self.config = config
        self.options = options
        self.env = env
        self.run_dir = Path(run_dir)
        self.monitor = monitor
        self.device = env.device
        self.step = 0
        self.last_checkpoint: Path | None = None
        model_cfg = config.model

        # -- networks (raw modules: their state dicts are what checkpoints and releases hold)
        norms = {"G": model_cfg.norm_G, "D": model_cfg.norm_D, "E": model_cfg.norm_E}
        nets = {"G": generator, "D": discriminator, "E": encoder}
        for name, net in nets.items():
            if net is None:
                continue
            if env.distributed and norms[name] == "syncbatch":
                net = convert_sync_batchnorm(net, self.device)
            net = net.to(self.device)
            if options.channels_last:
                net = net.to(memory_format=torch.channels_last)
            nets[name] = net.train()
        self.G, self.D, self.E = nets["G"], nets["D"], nets["E"]
        self.vgg = vgg.to(self.device) if vgg is not None else None
        if self.vgg is not None and options.channels_last:
            self.vgg = self.vgg.to(memory_format=torch.channels_last)
        # The EMA copy is taken before any forward pass (spectral norm's cached weight cannot be deep-copied after one).
        self.ema = EMA(self.G, options.ema_decay) if options.ema_decay > 0 else None

        # -- optimisers: the encoder trains with the generator
        fused = self.device.type == "cuda"
        g_params = list(self.G.parameters()) + (list(self.E.parameters()) if self.E is not None else [])
        self.opt_G = torch.optim.Adam(g_params, lr=options.lr_G, betas=options.betas, fused=fused or None)
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=options.lr_D, betas=options.betas, fused=fused or None)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=options.precision == "fp16")

        # -- DDP wrappers and compiled callables (they share the raw modules' parameters)
        g_run, d_run = wrap_ddp(self.G, env), wrap_ddp(self.D, env)
        e_run = wrap_ddp(self.E, env) if self.E is not None else None
        self._sync_G = [m for m in (g_run, e_run) if m is not None]
        self._sync_D = [d_run]
        d_for_g: nn.Module = self.D  # the G step reaches D's weights without DDP: D is frozen there
        if options.compile:
            g_run, d_run, d_for_g = torch.compile(g_run), torch.compile(d_run), torch.compile(d_for_g)
            e_run = torch.compile(e_run) if e_run is not None else None
        # The KL is summed over each micro-batch: scale it to the global batch (see SpadeObjective).
        kl_scale = options.grad_accum * env.world_size
        self.objective_G = SpadeObjective(g_run, d_for_g, e_run, config.loss, self.vgg, kl_scale=kl_scale)
        self.objective_D = SpadeObjective(g_run, d_run, e_run, config.loss, self.vgg)

        # -- data
        self.sampler = EpochSampler(
            dataset, env.world_size, env.rank, options.seed, options.micro_batch, options.steps_per_epoch * options.grad_accum
        )
        self.loader = make_loader(SeededSamples(dataset, options.seed), options.micro_batch, self.sampler)
        self.preview = preview

    # ------------------------------------------------------------------ state

    def state(self) -> dict[str, Any]:
        """This process's view of the training state (RNG of every process is added by :meth:`checkpoint`)."""
        epoch, position = divmod(self.step, self.options.steps_per_epoch)
        return {
            "step": self.step,
            "epoch": epoch,
            "batch_in_epoch": position * self.options.grad_accum,
            "steps_per_epoch": self.options.steps_per_epoch,
            "world_size": self.env.world_size,
            "generator": self.G.state_dict(),
            "discriminator": self.D.state_dict(),
            "encoder": self.E.state_dict() if self.E is not None else None,
            "optimizer_G": self.opt_G.state_dict(),
            "optimizer_D": self.opt_D.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "config": self.config.to_dict(),
        }

    def load_state(self, state: dict[str, Any], source: Path) -> None:
        """Restore a checkpoint written by :meth:`checkpoint` (same model, batch layout and seed)."""
        from spadekit.release import load_state_into

        saved = state.get("config", {})
        here = self.config.to_dict()
        for section, key in [("model", None), ("train", "batch_size"), ("train", "grad_accum"), ("train", "seed")]:
            theirs = saved.get(section, {}) if key is None else saved.get(section, {}).get(key)
            ours = here[section] if key is None else here[section][key]
            if theirs != ours:
                if key is None:
                    diff = [f"model.{k}={theirs.get(k)!r} (now {v!r})" for k, v in ours.items() if theirs.get(k) != v]
                    what = ", ".join(diff[:3]) or "model section"
                else:
                    what = f"{section}.{key}={theirs!r} (now {ours!r})"
                raise CheckpointError(f"{source}: written by a run with {what}; resume with the same options or use a new --out")
        if int(state.get("steps_per_epoch", -1)) != self.options.steps_per_epoch:
            raise CheckpointError(
                f"{source}: the run had {state.get('steps_per_epoch')} steps per epoch, now "
                f"{self.options.steps_per_epoch} (the dataset changed size); use a new --out"
            )
        load_state_into(self.G, state["generator"], source)
        load_state_into(self.D, state["discriminator"], source)
        if self.E is not None:
            if state.get("encoder") is None:
                raise CheckpointError(f"{source}: has no encoder state but the model uses the VAE encoder")
            load_state_into(self.E, state["encoder"], source)
        try:
            self.opt_G.load_state_dict(state["optimizer_G"])
            self.opt_D.load_state_dict(state["optimizer_D"])
            self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None:
                if state.get("ema") is None:
                    raise CheckpointError(f"{source}: has no EMA generator but train.ema_decay > 0")
                self.ema.load_state_dict(state["ema"])
        except (KeyError, ValueError, RuntimeError) as exc:
            raise CheckpointError(f"{source}: optimiser or EMA state does not fit ({str(exc).splitlines()[0]})") from None
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
        """``RUN_DIR/model``: the release format (EMA generator when EMA is on)."""
        from spadekit.release import SpadeModel

        generator = self.ema.module if self.ema is not None else self.G
        model = SpadeModel(self.config, generator=generator, discriminator=self.D, encoder=self.E)
        return model.save(self.run_dir / "model")

    # ------------------------------------------------------------------ loop

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = PRECISIONS[self.options.precision]
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def _batch(self, raw: dict[str, Any]) -> Batch:
        batch = prepare_batch(raw, self.config.model, self.device, non_blocking=self.device.type == "cuda")
        if self.options.channels_last:
            batch = Batch(
                semantics=batch.semantics.contiguous(memory_format=torch.channels_last),
                image=batch.image.contiguous(memory_format=torch.channels_last),
            )
        return batch

    def set_learning_rates(self, epoch: int) -> tuple[float, float]:
        o = self.options
        lr_G = decayed_lr(o.lr_G, epoch, o.epochs, o.epochs_decay)
        lr_D = decayed_lr(o.lr_D, epoch, o.epochs, o.epochs_decay)
        for group in self.opt_G.param_groups:
            group["lr"] = lr_G
        for group in self.opt_D.param_groups:
            group["lr"] = lr_D
        return lr_G, lr_D

    def train_step(self, batches: Iterator[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """One generator update and one discriminator update over ``grad_accum`` micro-batches.

        Returns the loss terms (detached, averaged over micro-batches). Raises
        :class:`NonFiniteLossError` before any weight changes when a loss is NaN or infinite.
        """
        accum = self.options.grad_accum
        self.opt_G.zero_grad(set_to_none=True)
        self.opt_D.zero_grad(set_to_none=True)
        totals: dict[str, torch.Tensor] = {}
        for micro in range(accum):
            batch = self._batch(next(batches))
            hold = micro < accum - 1
            # G step: D's weights are frozen, so backward computes no D weight gradients.
            self.D.requires_grad_(False)
            with no_sync(self._sync_G, hold):
                with self._autocast():
                    g_total, g_terms, fake = self.objective_G.generator_losses(batch)
                self.scaler.scale(g_total / accum).backward()
            self.D.requires_grad_(True)
            # D step on the same fake images, detached inside the objective.
            with no_sync(self._sync_D, hold):
                with self._autocast():
                    d_total, d_terms = self.objective_D.discriminator_losses(batch, fake)
                self.scaler.scale(d_total / accum).backward()
            for name, value in {**g_terms, **d_terms}.items():
                value = value.detach().float() / accum
                totals[name] = totals[name] + value if name in totals else value
        finite = bool(torch.isfinite(torch.stack(list(totals.values()))).all())
        if not all_true(finite, self.env):
            shown = ", ".join(f"{k}={float(v):.4g}" for k, v in totals.items())
            last = f"the last good checkpoint is {self.last_checkpoint}" if self.last_checkpoint else "no checkpoint was written yet"
            raise NonFiniteLossError(
                f"non-finite loss at step {self.step + 1} ({shown}); training stopped before the update, {last} "
                "(try a lower train.lr, train.precision=fp32 or bf16)"
            )
        self.scaler.step(self.opt_G)
        self.scaler.step(self.opt_D)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.G)
        return totals

    @torch.no_grad()
    def preview_images(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(colourised labels, synthesized, real), each (N, 3, H, W) in [-1, 1], from the fixed preview items.

        Uses the EMA generator when there is one, in eval mode, and no random numbers (the encoder's
        mean is the latent), so previews never change the training's random streams or statistics.
        """
        from torch.utils.data import default_collate

        raw = default_collate(self.preview)
        batch = self._batch(raw)
        generator = self.ema.module if self.ema is not None else self.G
        was_training = generator.training
        generator.eval()
        z = None
        if self.E is not None:
            self.E.eval()
            z, _ = self.E(batch.image)
            self.E.train()
        with self._autocast():
            fake = generator(batch.semantics, z)
        generator.train(was_training)
        m = self.config.model
        labels = colorize_labels(raw["label"], self.config.data.colors, m.label_nc + int(m.contain_dontcare))
        return labels, fake.float().cpu(), batch.image.float().cpu()

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


# ----------------------------------------------------------------------------- building


@dataclass
class Plan:
    """What a run will do, printed before it starts (and by ``--dry-run``)."""

    options: LoopOptions
    parameters: dict[str, int]
    dataset_size: int | None
    env: DistEnv

    def describe(self) -> str:
        o, e = self.options, self.env
        counts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in self.parameters.items() if v)
        lines = [
            f"device {e.device} x {e.world_size} process(es); precision {o.precision}"
            + (", channels-last" if o.channels_last else "") + (", compiled" if o.compile else ""),
            f"parameters: {counts}",
            f"global batch {o.global_batch} = {e.world_size} process(es) x {o.grad_accum} accumulation x {o.micro_batch}",
        ]
        if self.dataset_size is not None:
            lines.append(
                f"dataset {self.dataset_size} samples -> {o.steps_per_epoch} steps/epoch; "
                f"{o.total_steps} steps (~{o.total_steps / max(o.steps_per_epoch, 1):.1f} epochs)"
            )
        lines.append(
            f"lr G {o.lr_G:g} D {o.lr_D:g}, betas {o.betas}; decay over epochs {o.epochs}..{o.epochs + o.epochs_decay}"
            + (f"; EMA {o.ema_decay}" if o.ema_decay else "")
        )
        lines.append(f"checkpoint every {o.checkpoint_every} (keep {o.keep_checkpoints}), log every {o.log_every}, images every {o.image_every}")
        return "\n".join(lines)


def loop_options(config: Config, world_size: int, dataset_size: int, steps: int | None = None) -> LoopOptions:
    """Resolve batch layout, schedule and learning rates; ConfigError/DataError when they cannot work."""
    t = config.train
    per_step = world_size * t.grad_accum
    if t.batch_size % per_step:
        raise ConfigError(
            f"train.batch_size={t.batch_size} (the global batch) must be divisible by processes x train.grad_accum "
            f"= {world_size} x {t.grad_accum}"
        )
    micro, steps_per_epoch = epoch_layout(dataset_size, world_size, t.batch_size, t.grad_accum)
    if steps_per_epoch < 1:
        where = config.data.root or f"{config.data.format} data"
        raise DataError(f"{where}: {dataset_size} training samples is fewer than one global batch of {t.batch_size}")
    if steps is not None and steps < 0:
        raise ConfigError("--steps must be >= 0")
    total = steps if steps is not None else (t.epochs + t.epochs_decay) * steps_per_epoch
    settings = optimizer_settings(t.lr, t.ttur, t.beta1, t.beta2)
    (lr_G, betas), (lr_D, _) = settings["generator"], settings["discriminator"]
    every = lambda n: max(1, int(n))  # noqa: E731
    return LoopOptions(
        total_steps=total,
        steps_per_epoch=steps_per_epoch,
        micro_batch=micro,
        grad_accum=t.grad_accum,
        global_batch=t.batch_size,
        epochs=t.epochs,
        epochs_decay=t.epochs_decay,
        lr_G=lr_G,
        lr_D=lr_D,
        betas=tuple(betas),
        precision=t.precision,
        channels_last=t.channels_last,
        compile=t.compile,
        ema_decay=t.ema_decay,
        seed=t.seed,
        checkpoint_every=every(t.checkpoint_every),
        keep_checkpoints=max(1, t.keep_checkpoints),
        log_every=every(t.log_every),
        image_every=every(t.image_every),
    )


def build_vgg(config: Config) -> nn.Module | None:
    """The VGG19 perceptual loss when ``loss.lambda_vgg > 0``; MissingWeightsError (naming the file
    and where it goes) when the weights are not on disk."""
    if config.loss.lambda_vgg <= 0:
        return None
    from spadekit.losses import VGG19Features, VGGLoss, find_vgg19_weights

    path = find_vgg19_weights(config.loss.vgg_weights)  # fails fast, before building the 140M-parameter trunk
    return VGGLoss(VGG19Features(path))


def open_training_data(config: Config, split: str = "train", train: bool = True) -> Dataset:
    from spadekit.data import open_dataset

    return open_dataset(config.data.root, preset=config.preset, split=split, train=train, data=config.data, model=config.model)


def preview_items(config: Config, fallback: Dataset, count: int = PREVIEW_SAMPLES) -> list[dict[str, Any]]:
    """The first ``count`` validation items (test-time preprocessing), else the first training items."""
    try:
        dataset = open_training_data(config, split="val", train=False)
    except SpadekitError:
        dataset = fallback
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # training-set fallback: fixed augmentation, training RNG untouched
        return [dataset[i] for i in range(min(count, len(dataset)))]  # type: ignore[arg-type]


def networks_for(
    config: Config, init_model: Any | None = None, init_source: str = "--init-from model"
) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """Fresh networks (seeded by ``train.seed``), with generator and encoder weights copied from a
    :class:`~spadekit.release.SpadeModel` when fine-tuning."""
    from spadekit.models import build_networks
    from spadekit.release import load_state_into

    torch.manual_seed(config.train.seed)
    generator, discriminator, encoder = build_networks(config.model)
    if init_model is not None:
        load_state_into(generator, init_model.generator.state_dict(), f"{init_source} (generator)")
        if encoder is not None and init_model.encoder is not None:
            load_state_into(encoder, init_model.encoder.state_dict(), f"{init_source} (encoder)")
    return generator, discriminator, encoder


def build_trainer(
    config: Config,
    run_dir: str | Path,
    *,
    env: DistEnv | None = None,
    steps: int | None = None,
    dataset: Dataset | None = None,
    preview: list[dict[str, Any]] | None = None,
    init_model: Any | None = None,
    init_source: str = "--init-from model",
    resume: str | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    log: Callable[[str], None] = print,
) -> Trainer:
    """Everything a run needs, from a config: VGG check, networks, data, optimisers, resume.

    Args:
        config: the resolved config.
        run_dir: the run directory (created by rank 0).
        env: process placement (default: one process on the best device).
        steps: generator updates to train in total (default: ``(epochs + epochs_decay) × steps/epoch``).
        dataset: training items; default :func:`spadekit.data.open_dataset` on ``config.data``.
        preview: fixed items for image grids; default the first validation items.
        init_model: a :class:`~spadekit.release.SpadeModel` to fine-tune from (G and E weights; D fresh);
            ignored when resuming. ``init_source`` names it in errors.
        resume: None (fresh run; an error if ``run_dir`` holds checkpoints), ``"auto"`` (the latest
            checkpoint in ``run_dir`` if any) or a checkpoint path.
        progress, tensorboard: reporting switches (rank 0 only).
        log: where the plan and notices are printed (rank 0 only).
    """
    env = env or DistEnv(device=resolve_device(None))
    run_dir = Path(run_dir)
    say = log if env.is_main else (lambda _text: None)

    vgg = build_vgg(config)  # before anything else: a missing weights file stops the run before step 1
    if dataset is None:
        dataset = open_training_data(config)
    options = loop_options(config, env.world_size, len(dataset), steps)  # type: ignore[arg-type]

    resume_from: tuple[Path, dict[str, Any]] | None = None
    if resume is None:
        existing = ckpt.list_checkpoints(run_dir)
        if existing:
            raise ConfigError(
                f"{run_dir}: already holds checkpoints (latest step {existing[-1][0]}); pass --resume auto to continue it "
                "or choose a new --out"
            )
    else:
        # Rank 0 picks the file and tells the others, so every process resumes from the same step.
        # (RUN_DIR must be on a file system that every node can read.)
        chosen: str | None = resume
        if resume == "auto":
            found = ckpt.latest_checkpoint(run_dir) if env.is_main else None
            chosen = broadcast_object(str(found[0]) if found else None, env)
        if chosen is not None:
            resume_from = (Path(chosen), ckpt.load_checkpoint(chosen))

    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        removed = ckpt.remove_stale_temporaries(run_dir)
        if removed:
            say(f"removed {len(removed)} half-written checkpoint file(s) left by an interrupted run")
        config.save(run_dir / "config.json")

    generator, discriminator, encoder = networks_for(config, init_model if resume_from is None else None, init_source)
    if preview is None:
        preview = preview_items(config, dataset)
    monitor: Silent = Monitor(run_dir, progress, tensorboard, title=f"spadekit {config.preset}: {run_dir.name}") if env.is_main else Silent()
    from spadekit.data import make_loader

    def loader(data: Dataset, batch_size: int, sampler: EpochSampler) -> Any:
        generator_rng = torch.Generator().manual_seed(options.seed)  # keeps DataLoader off the global RNG
        return make_loader(data, batch_size, False, config.data, sampler=sampler, drop_last=True, generator=generator_rng)

    trainer = Trainer(
        config, options, env, run_dir, generator, discriminator, encoder, vgg, dataset, preview, monitor, loader
    )
    plan = Plan(options, {"G": count_parameters(generator), "D": count_parameters(discriminator), "E": count_parameters(encoder)}, len(dataset), env)  # type: ignore[arg-type]
    say(plan.describe())
    # Per-process random streams (z sampling); the data order does not depend on them.
    seed_everything(options.seed + env.rank)
    if resume_from is not None:
        path, state = resume_from
        trainer.load_state(state, path)
        trainer.last_checkpoint = path
        say(f"resumed from {path} at step {trainer.step}")
    elif resume == "auto":
        say("no checkpoint to resume from: starting a new run")
    return trainer


def plan_only(config: Config, env: DistEnv, dataset_size: int | None) -> Plan:
    """The plan of a run without building data or touching disk (``--dry-run``); networks are built
    on the meta device, so even full-size models cost nothing."""
    from spadekit.models import build_networks

    with torch.device("meta"):
        generator, discriminator, encoder = build_networks(config.model, init=False)
    size = dataset_size if dataset_size is not None else max(config.train.batch_size, 1) * env.world_size
    options = loop_options(config, env.world_size, max(size, config.train.batch_size))
    return Plan(
        options,
        {"G": count_parameters(generator), "D": count_parameters(discriminator), "E": count_parameters(encoder)},
        dataset_size,
        env,
    )

