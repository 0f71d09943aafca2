"""course_lib: the small, tested library behind the open course on variational autoencoders.

The pieces every chapter uses are importable from here; model families live in their own
modules (one file each) and are imported by the chapters that introduce them.
"""

from ._about import REPO_URL, __version__
from .checkpoint import (CheckpointError, config_hash, load_checkpoint, read_record, save_checkpoint,
                         train_or_load)
from .data import DatasetCorruptError, DatasetNotFoundError, DeviceLoader, Split, load
from .env import Settings, cache_dir, pick_device, setup, smoke
from .exercises import ExerciseError, check_close
from .plotting import glue, plot_history, show_images
from .trainer import NonFiniteLossError, Trainer

__all__ = [
    "REPO_URL", "__version__", "setup", "Settings", "smoke", "pick_device", "cache_dir",
    "load", "Split", "DeviceLoader", "DatasetNotFoundError", "DatasetCorruptError",
    "Trainer", "NonFiniteLossError", "train_or_load", "save_checkpoint", "load_checkpoint",
    "read_record", "config_hash", "CheckpointError", "show_images", "plot_history",
    "check_close", "ExerciseError", "glue",
]
