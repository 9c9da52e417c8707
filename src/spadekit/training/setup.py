"""From a config to a ready :class:`~spadekit.training.trainer.Trainer`: the only place of the
training layer that reads a :class:`~spadekit.config.Config`.

The method of the config (``config.method``) supplies the networks, the objective and the batch
preparer; everything else (data, schedule, resume, reports, release) is the same for every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.utils.data import Dataset

from spadekit.config import Config
from spadekit.errors import CheckpointError, ConfigError, DataError, SpadekitError
from spadekit.methods import method_of
from spadekit.training import checkpoint as ckpt
from spadekit.data.transforms import check_training_sizes
from spadekit.training.distributed import DistEnv, broadcast_object, resolve_device
from spadekit.training.ema import describe_release
from spadekit.training.gallery import colorize_labels
from spadekit.training.monitor import Monitor, Silent
from spadekit.training.optim import optimizer_settings
from spadekit.training.sampling import EpochSampler, epoch_layout
from spadekit.training.trainer import LoopOptions, Trainer, count_parameters, matches_any, seed_everything

PREVIEW_SAMPLES = 4


@dataclass
class Plan:
    """What a run will do, printed before it starts (and by ``--dry-run``)."""

    options: LoopOptions
    parameters: dict[str, int]
    dataset_size: int | None
    env: DistEnv
    method: str = "spade"

    def describe(self) -> str:
        o, e = self.options, self.env
        counts = ", ".join(f"{k} {v / 1e6:.2f}M" for k, v in self.parameters.items() if v)
        lines = [
            f"method {self.method}; device {e.device} x {e.world_size} process(es); precision {o.precision}"
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
            + ("; D step on regenerated fakes (official order)" if o.regenerate_fakes else "")
        )
        if o.frozen:
            lines.append(f"frozen (not trained, eval mode): {', '.join(o.frozen)}")
        if o.trainable:
            lines.append(f"trained parameters: only those matching {', '.join(o.trainable)}")
        lines.append(describe_release(o.ema_decay, o.ema_warmup, o.total_steps))
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
    settings = optimizer_settings(t.lr, t.ttur, t.beta1, t.beta2, t.lr_G, t.lr_D)
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
        ema_warmup=t.ema_warmup,
        ema_refresh_batches=t.ema_refresh_batches,
        regenerate_fakes=t.regenerate_fakes,
        seed=t.seed,
        frozen=tuple(t.frozen),
        trainable=tuple(t.trainable),
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
    """The items of ``split`` as the config's method reads them (its ``open_data`` hook, else the dataset)."""
    method = method_of(config)
    if method.open_data is not None:
        return method.open_data(config, split, train, {})
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


def networks_for(config: Config, init_model: Any | None = None, init_source: str = "--init-from model",
                 init_parts: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """Fresh networks of the config's method (seeded by ``train.seed``), with weights copied from a
    release model when fine-tuning: ``init_parts`` (each must be in both), by default the generator
    and the encoder where both have them."""
    from spadekit.release import load_state_into

    torch.manual_seed(config.train.seed)
    networks = method_of(config).build_networks(config, True)
    if init_model is None:
        return networks
    available = init_model.networks()
    for name in init_parts or ():
        if name not in networks or available.get(name) is None:
            raise ConfigError(f"--init-parts {name}: {init_source} has parts {', '.join(k for k, v in available.items() if v is not None)}"
                              f" and this run trains {', '.join(networks)}")
    for name in init_parts if init_parts is not None else ("generator", "encoder"):
        source = available.get(name)
        if name in networks and source is not None:
            load_state_into(networks[name], source.state_dict(), f"{init_source} ({name})")
    return networks


def check_frozen(frozen: list[str], networks: dict[str, nn.Module], optimized: dict[str, tuple[str, ...]]) -> None:
    """ConfigError unless ``train.frozen`` names parts of this method and leaves something to train
    in the generator step."""
    unknown = [name for name in frozen if name not in networks]
    if unknown:
        raise ConfigError(f"train.frozen: {', '.join(unknown)} is not a part of this model; its parts are {', '.join(networks)}")
    trainable = [name for name in optimized["G"] if name in networks and name not in frozen]
    if not trainable:
        raise ConfigError(f"train.frozen: with {', '.join(frozen)} frozen nothing is left to train in the generator step "
                          f"({', '.join(n for n in optimized['G'] if n in networks)})")


def check_trainable(trainable: list[str], frozen: list[str], networks: dict[str, nn.Module], optimized: dict[str, tuple[str, ...]]) -> None:
    """ConfigError unless every ``train.trainable`` pattern names a parameter of a part that is not
    frozen and the generator step is left something to train."""
    if not trainable:
        return
    names = [f"{part}.{name}" for part, net in networks.items() if part not in frozen for name, _ in net.named_parameters()]
    for pattern in trainable:
        if not any(matches_any(name, [pattern]) for name in names):
            raise ConfigError(f"train.trainable: {pattern!r} matches no parameter of the parts being trained "
                              f"({', '.join(p for p in networks if p not in frozen)}); names look like {names[0]!r}")
    if not any(matches_any(name, trainable) for name in names if name.split(".", 1)[0] in optimized["G"]):
        raise ConfigError(f"train.trainable: {trainable} leaves nothing to train in the generator step")


def resume_guard(config: Config, steps_per_epoch: int) -> Callable[[dict[str, Any], Path], None]:
    """A check that a checkpoint was written by a run with the same method (and method options),
    model, batch layout, seed and dataset size."""
    here = config.to_dict()

    def check(state: dict[str, Any], source: Path) -> None:
        saved = state.get("config", {})
        if saved.get("method", "spade") != here["method"]:
            raise CheckpointError(
                f"{source}: written by a {saved.get('method', 'spade')} run, this one is {here['method']}; use a new --out"
            )
        if config.method in here and saved.get(config.method) != here[config.method]:
            raise CheckpointError(f"{source}: written by a run with other {config.method}.* options; use a new --out")
        ckpt.check_resumable(state, here, steps_per_epoch, source)

    return check


def release_writer(config: Config, dataset: Dataset | None = None) -> Callable[[dict[str, nn.Module], Path, dict[str, Any]], Path]:
    """Writes ``networks`` as a release model of ``config``'s method (the parts the method releases,
    and the data files it carries for a model trained on ``dataset``)."""
    from spadekit.release import SpadeModel

    method = method_of(config)
    parts = method.release_parts
    assets = method.release_assets(config, dataset) if method.release_assets is not None and dataset is not None else {}

    def write(networks: dict[str, nn.Module], directory: Path, provenance: dict[str, Any]) -> Path:
        kept = {name: net for name, net in networks.items() if name in parts}
        return SpadeModel.from_parts(config, kept, provenance, assets).save(directory)

    return write


def label_pictures(config: Config) -> Callable[[dict[str, Any]], torch.Tensor]:
    m = config.model
    return lambda raw: colorize_labels(raw["label"], config.data.colors, m.label_nc + int(m.contain_dontcare))


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
    init_parts: Sequence[str] | None = None,
    resume: str | None = None,
    progress: bool = True,
    tensorboard: bool = True,
    log: Callable[[str], None] = print,
) -> Trainer:
    """Everything a run needs, from a config: VGG check, networks, data, optimisers, resume.

    Args:
        config: the resolved config; ``config.method`` picks networks, objective and batch layout.
        run_dir: the run directory (created by rank 0).
        env: process placement (default: one process on the best device).
        steps: generator updates to train in total (default: ``(epochs + epochs_decay) × steps/epoch``).
        dataset: training items; default :func:`spadekit.data.open_dataset` on ``config.data``.
        preview: fixed items for image grids; default the first validation items.
        init_model: a release model to fine-tune from (G and E weights; D fresh); ignored when
            resuming. ``init_source`` names it in errors; ``init_parts`` picks the parts to copy
            (default: generator and encoder).
        resume: None (fresh run; an error if ``run_dir`` holds checkpoints), ``"auto"`` (the latest
            checkpoint in ``run_dir`` if any) or a checkpoint path.
        progress, tensorboard: reporting switches (rank 0 only).
        log: where the plan and notices are printed (rank 0 only).
    """
    env = env or DistEnv(device=resolve_device(None))
    run_dir = Path(run_dir)
    say = log if env.is_main else (lambda _text: None)
    method = method_of(config)
    check_training_sizes(config.model, config.data, method.training_size_of(config))  # before anything is built or read

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
            # Before the run directory is touched: a refused resume leaves config.json as it was.
            resume_guard(config, options.steps_per_epoch)(resume_from[1], resume_from[0])

    networks = networks_for(config, init_model if resume_from is None else None, init_source, init_parts)
    check_frozen(config.train.frozen, networks, method.optimized)  # before the run directory is touched
    check_trainable(config.train.trainable, config.train.frozen, networks, method.optimized)
    method.build_objective(networks, config, vgg)  # so is the objective's check of its options against the networks

    if env.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        removed = ckpt.remove_stale_temporaries(run_dir)
        if removed:
            say(f"removed {len(removed)} half-written checkpoint file(s) left by an interrupted run")
        config.save(run_dir / "config.json")

    if resume_from is None and method.prepare_training is not None:
        method.prepare_training(networks, dataset, config, say)  # parts fitted to the data (a resume reloads them)
    if preview is None:
        preview = preview_items(config, dataset)
    monitor: Silent = Monitor(run_dir, progress, tensorboard, title=f"spadekit {config.preset}: {run_dir.name}") if env.is_main else Silent()
    from spadekit.data import make_loader

    def loader(data: Dataset, batch_size: int, sampler: EpochSampler) -> Any:
        generator_rng = torch.Generator().manual_seed(options.seed)  # keeps DataLoader off the global RNG
        return make_loader(data, batch_size, False, config.data, sampler=sampler, drop_last=True, generator=generator_rng)

    if vgg is not None:
        vgg = vgg.to(env.device)
        if options.channels_last:
            vgg = vgg.to(memory_format=torch.channels_last)
    sync = [name for name, norm in (("generator", config.model.norm_G), ("discriminator", config.model.norm_D),
                                    ("encoder", config.model.norm_E)) if norm == "syncbatch"]
    trainer = Trainer(
        options=options,
        env=env,
        run_dir=run_dir,
        networks=networks,
        optimized=method.optimized,
        make_objective=lambda parts: method.build_objective(parts, config, vgg),
        prepare_batch=lambda raw, device, non_blocking: method.prepare_batch(raw, config, device, non_blocking),
        dataset=dataset,
        preview=preview,
        visualize_labels=label_pictures(config),
        monitor=monitor,
        make_loader=loader,
        save_release=release_writer(config, dataset),
        record=config.to_dict(),
        check_resume=resume_guard(config, options.steps_per_epoch),
        sync_batchnorm=sync,
    )
    plan = Plan(options, {name: count_parameters(net) for name, net in networks.items()}, len(dataset), env, config.method)  # type: ignore[arg-type]
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
    with torch.device("meta"):
        networks = method_of(config).build_networks(config, False)
    size = dataset_size if dataset_size is not None else max(config.train.batch_size, 1) * env.world_size
    options = loop_options(config, env.world_size, max(size, config.train.batch_size))
    return Plan(options, {name: count_parameters(net) for name, net in networks.items()}, dataset_size, env, config.method)
