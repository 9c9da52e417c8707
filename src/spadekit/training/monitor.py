"""What a run reports while it trains: a tqdm bar, TensorBoard scalars and images, ``metrics.jsonl``
and the HTML gallery. Only rank 0 creates a :class:`Monitor`; the other processes use :class:`Silent`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from spadekit.io import atomic_write_text
from spadekit.training.gallery import sample_grid, save_png, write_gallery


def truncate_metrics(path: Path, last_step: int) -> None:
    """Drop ``metrics.jsonl`` lines logged after ``last_step`` (a resumed run logs them again)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if int(json.loads(line).get("step", 0)) <= last_step:
                kept.append(line)
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue  # a line cut short by a kill
    atomic_write_text(path, "".join(f"{line}\n" for line in kept))


class Silent:
    """The monitor of processes other than rank 0: does nothing."""

    def start(self, step: int, total: int) -> None: ...
    def advance(self, step: int) -> None: ...
    def scalars(self, step: int, values: dict[str, float]) -> None: ...
    def images(self, step: int, label_rgb: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> None: ...
    def message(self, text: str) -> None: ...
    def close(self) -> None: ...


class Monitor(Silent):
    """Progress bar (it/s, ETA), TensorBoard (``RUN_DIR/tensorboard``), ``RUN_DIR/metrics.jsonl`` and
    ``RUN_DIR/gallery/index.html``.

    Args:
        run_dir: the run directory.
        progress: show the tqdm bar.
        tensorboard: write TensorBoard event files.
        title: heading of the gallery page.
    """

    def __init__(self, run_dir: Path, progress: bool = True, tensorboard: bool = True, title: str = "spadekit run"):
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.use_tensorboard = tensorboard
        self.title = title
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.gallery_dir = self.run_dir / "gallery"
        self.bar: Any = None
        self.writer: Any = None
        self._last_time = time.perf_counter()
        self._last_step = 0

    def start(self, step: int, total: int) -> None:
        truncate_metrics(self.metrics_path, step)
        if self.use_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step hides events that a killed run logged after its last checkpoint.
            self.writer = SummaryWriter(str(self.run_dir / "tensorboard"), purge_step=step or None)
        if self.progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=step, unit="it", dynamic_ncols=True, desc="train", smoothing=0.1)
        self._last_time, self._last_step = time.perf_counter(), step

    def advance(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        now = time.perf_counter()
        rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_time, self._last_step = now, step
        record = {"step": step, **values, "it_per_s": rate, "time": time.time()}
        with open(self.metrics_path, "a") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for name, value in values.items():
                if name != "epoch":
                    self.writer.add_scalar(_tag(name), value, step)
            self.writer.add_scalar("speed/it_per_s", rate, step)
        if self.bar is not None:
            shown = {k: f"{v:.3g}" for k, v in values.items() if k.startswith(("G_", "D_", "KLD"))}
            self.bar.set_postfix(shown, refresh=False)

    def images(self, step: int, label_rgb: torch.Tensor, fake: torch.Tensor, real: torch.Tensor) -> None:
        grid = sample_grid(label_rgb, fake, real)
        save_png(grid, self.gallery_dir / f"step-{step:08d}.png")
        write_gallery(self.gallery_dir, self.title)
        if self.writer is not None:
            self.writer.add_image("samples/label_fake_real", grid, step)

    def message(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _tag(name: str) -> str:
    if name.startswith(("G_", "KLD")):
        return f"loss_G/{name}"
    if name.startswith("D_"):
        return f"loss_D/{name}"
    return f"train/{name}"
