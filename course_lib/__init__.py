"""course_lib: the small, tested library behind the open course on variational autoencoders.

Layers (each imports only the ones above it):

- core: `env`, `data`, `trainer`, `checkpoint` (the file format), `plotting`, `widgets`,
  `notebook`, `exercises`;
- building blocks: `distributions` (likelihoods and priors), `nets` (encoders and decoders
  parameterised by ``image_shape``), `objectives` (`elbo`, `iwae_bound`), `evaluation`;
- `models/`: one file per model family, architecture only;
- `runs/`: which models ship and how each trains (`runs.trained(name)`, `fit_run`);
- `vi/`: Part I's variational inference on models with exact answers.
"""

from ._about import REPO_URL, __version__
from .checkpoint import CheckpointError, config_hash, load_checkpoint, read_record, save_checkpoint
from .data import DatasetCorruptError, DatasetNotFoundError, DeviceLoader, Split, load
from .env import Settings, cache_dir, interactive, pick_device, setup, smoke
from .exercises import ExerciseError, check_close
from .plotting import glue, plot_history, show_images
from .trainer import NonFiniteLossError, Trainer

__all__ = [
    "REPO_URL", "__version__", "setup", "Settings", "smoke", "pick_device", "cache_dir", "interactive",
    "load", "Split", "DeviceLoader", "DatasetNotFoundError", "DatasetCorruptError",
    "Trainer", "NonFiniteLossError", "save_checkpoint", "load_checkpoint",
    "read_record", "config_hash", "CheckpointError", "show_images", "plot_history",
    "check_close", "ExerciseError", "glue",
]
