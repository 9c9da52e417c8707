"""Training: the loop (:mod:`.trainer`), building it from a config (:mod:`.setup`), torchrun/DDP/
SyncBatchNorm (:mod:`.distributed`), resumable checkpoints (:mod:`.checkpoint`), deterministic data
order (:mod:`.sampling`), the EMA generator (:mod:`.ema`), optimiser settings (:mod:`.optim`) and
reporting (:mod:`.monitor`, :mod:`.gallery`)."""

from spadekit.training.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from spadekit.training.distributed import DistEnv, cleanup_distributed, setup_distributed
from spadekit.training.ema import EMA
from spadekit.training.setup import Plan, build_trainer, loop_options, plan_only
from spadekit.training.trainer import LoopOptions, NonFiniteLossError, Trainer, TrainResult

__all__ = [
    "DistEnv",
    "EMA",
    "LoopOptions",
    "NonFiniteLossError",
    "Plan",
    "TrainResult",
    "Trainer",
    "build_trainer",
    "cleanup_distributed",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "loop_options",
    "plan_only",
    "save_checkpoint",
    "setup_distributed",
]
