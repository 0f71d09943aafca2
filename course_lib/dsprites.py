"""dSprites (Matthey et al., 2017), rendered by the course, with the official index order.

Introduced in: β-VAE and disentanglement. Five factors, in the official order (shape slowest,
posY fastest): shape (square, ellipse, heart), scale (6 values in [0.5, 1]), orientation (40
values of linspace(0, 2π, 40): 0 and 2π are both present, a known duplicate of the original,
kept so that indices match), posX and posY (32 values in [0, 1] each). 737,280 binary images.
`FACTOR_VALUES` are the official ``latents_values`` (shape is 1, 2, 3 there).

The official file cannot be downloaded here, so the 3 x 6 x 40 = 720 centred sprites are
rendered once (4 x 4 supersamples per pixel, thresholded at 1/2); an image is one of them moved
by whole pixels. Sizes at scale 1, in frame widths W (proportional to scale): square side 0.30;
ellipse 0.36 x 0.18 (long axis horizontal at orientation 0); heart 0.32 wide (the curve
(x²+y²-1)³ = x²y³, lobes up). Orientation turns sprites counter-clockwise on screen. posX
moves the centre right, posY down (screen coordinates), over [W/4 + W/128, 3W/4 - W/128]: a
pixel per step at 64 x 64, half a pixel at 32 x 32 (there sprites are rendered at two
sub-pixel phases per axis, so no two positions coincide). No sprite point is farther than
0.212 W from its centre, so every sprite stays inside the frame.

If ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` lies in ``$VAE_COURSE_DATA`` (or its
``dsprites/`` folder), 64 x 64 `DSprites` uses the official images instead (bit-packed, 377 MB).
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from .data import DatasetCorruptError
from .factors import FactorGrid
from .env import DATA_VAR

FACTOR_NAMES = ("shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (3, 6, 40, 32, 32)
FACTOR_VALUES = (torch.arange(1.0, 4.0), torch.linspace(0.5, 1, 6), torch.linspace(0, 2 * math.pi, 40),
                 torch.linspace(0, 1, 32), torch.linspace(0, 1, 32))
SHAPES = ("square", "ellipse", "heart")
OFFICIAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
IMAGE_SIZES = (32, 64, 128)
_SQUARE, _ELLIPSE, _HEART = 0.30, (0.36, 0.18), 0.32   # sizes at scale 1, in frame widths
_SUPERSAMPLE = 4


_GRID = FactorGrid(FACTOR_SIZES)


def index_from_factors(classes: torch.Tensor) -> torch.Tensor:
    """dSprites (..., 5) classes -> (...,) index in the official file (introduced in: β-VAE and disentanglement)."""
    return _GRID.index_from_factors(classes)


def factors_from_index(index: torch.Tensor) -> torch.Tensor:
    """dSprites (...,) index -> (..., 5) classes (introduced in: β-VAE and disentanglement)."""
    return _GRID.factors_from_index(index)


def _inside(shape: int, u: torch.Tensor, v: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Is (u, v) (sprite frame, y up, pixels) inside the sprite? w = scale * frame width, in pixels."""
    if shape == 0:                                                      # |u|, |v| <= side / 2
        return (u.abs() <= _SQUARE / 2 * w) & (v.abs() <= _SQUARE / 2 * w)
    if shape == 1:                                                      # (u/a)^2 + (v/b)^2 <= 1
        return (u / (_ELLIPSE[0] / 2 * w)) ** 2 + (v / (_ELLIPSE[1] / 2 * w)) ** 2 <= 1
    k = 2.278 / (_HEART * w)                                            # the curve is 2.278 wide
    x, y = u * k, v * k + 0.118                                         # 0.118: centre of its bounding box
    return (x**2 + y**2 - 1) ** 3 - x**2 * y**3 <= 0


def _positions(image_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sprite centre c_i = S/2 + (i - 15.5) S/64 for i < 32; its whole-pixel part and sub-pixel phase."""
    c = image_size / 2 + (torch.arange(32, dtype=torch.float64) - 15.5) * image_size / 64
    phases = torch.unique(c - c.floor())                                # (P,) in [0, 1)
    phase_of = torch.searchsorted(phases, c - c.floor())                # (32,)
    return c.floor().long(), phases, phase_of


def _render(image_size: int) -> torch.Tensor:
    """All centred sprites: (720, P, P, T, T) bool with T = S/2; phase p puts the centre at T/2 + phase."""
    s, t, n = image_size, image_size // 2, _SUPERSAMPLE
    _, phases, _ = _positions(s)
    sub = (torch.arange(t * n, dtype=torch.float64) + 0.5) / n           # supersample coordinates in the tile
    theta = FACTOR_VALUES[2].double()[:, None, None]                     # (40, 1, 1)
    tiles = torch.zeros(3, 6, 40, len(phases), len(phases), t, t, dtype=torch.bool)
    for py, fy in enumerate(phases.tolist()):
        for px, fx in enumerate(phases.tolist()):
            y = -(sub[:, None] - t / 2 - fy)                             # (tn, 1), up is positive
            x = sub[None, :] - t / 2 - fx                                # (1, tn)
            u = x * theta.cos() + y * theta.sin()                        # rotate by -theta: (40, tn, tn)
            v = -x * theta.sin() + y * theta.cos()
            for shape in range(3):
                for k, scale in enumerate(FACTOR_VALUES[1].tolist()):
                    hit = _inside(shape, u, v, scale * s).double()
                    cover = hit.view(40, t, n, t, n).mean((2, 4))        # fraction of each pixel covered
                    tiles[shape, k, :, py, px] = cover >= 0.5
    if tiles[..., 0, :].any() or tiles[..., -1, :].any() or tiles[..., 0].any() or tiles[..., -1].any():
        raise RuntimeError("a sprite touches its tile's border: the sprite sizes are too large")
    return tiles.view(720, len(phases), len(phases), t, t)


def find_official() -> Path | None:
    """The official dSprites file under ``$VAE_COURSE_DATA`` (or its ``dsprites/`` folder), if any.

    Introduced in: β-VAE and disentanglement.
    """
    root = os.environ.get(DATA_VAR)
    for folder in ([Path(root).expanduser(), Path(root).expanduser() / "dsprites"] if root else []):
        if (folder / OFFICIAL_FILE).is_file():
            return folder / OFFICIAL_FILE
    return None


def load_official(path: str | Path, chunk: int = 16_384) -> torch.Tensor:
    """Read the official npz with numpy: (737280, 64, 8) uint8, each image row packed into 8 bytes.

    Introduced in: β-VAE and disentanglement. Reads ``imgs`` in chunks (the plain array is 3 GB)
    and checks ``latents_classes`` against this module's index order; never unpickles ``metadata``.
    """
    fix = f"Delete {path} and download it again from https://github.com/deepmind/dsprites-dataset."
    try:
        with np.load(path, allow_pickle=False) as npz, zipfile.ZipFile(path) as zf:
            classes = npz["latents_classes"]
            with zf.open("imgs.npy") as f:
                read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                               (2, 0): np.lib.format.read_array_header_2_0}[np.lib.format.read_magic(f)]
                shape, fortran, dtype = read_header(f)
                if shape != (737_280, 64, 64) or dtype != np.uint8 or fortran:
                    raise DatasetCorruptError(f"{path}: imgs is {shape} {dtype}, expected (737280, 64, 64) uint8. {fix}")
                packed = np.empty((737_280, 64, 8), np.uint8)
                for i in range(0, 737_280, chunk):
                    rows = min(chunk, 737_280 - i)
                    raw = f.read(rows * 4096)
                    if len(raw) != rows * 4096:
                        raise DatasetCorruptError(f"{path}: imgs is truncated. {fix}")
                    block = np.frombuffer(raw, np.uint8).reshape(rows, 64, 64)
                    if block.max(initial=0) > 1:
                        raise DatasetCorruptError(f"{path}: imgs is not binary (0/1). {fix}")
                    packed[i:i + len(block)] = np.packbits(block, axis=-1)
    except DatasetCorruptError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as err:  # KeyError: a missing array
        raise DatasetCorruptError(f"cannot read {path} as the dSprites npz ({type(err).__name__}: {err}). {fix}") from err
    ours = factors_from_index(torch.arange(737_280)).numpy()
    if classes.shape != (737_280, 6) or not np.array_equal(classes[:, 1:], ours):
        raise DatasetCorruptError(f"{path}: latents_classes is not in the official order. {fix}")
    return torch.from_numpy(packed)


_CACHE: dict[int, torch.Tensor] = {}


class DSprites(FactorGrid):
    """dSprites images made on ``device`` by gather, batch by batch (introduced in: β-VAE and disentanglement).

    ``source``: ``"auto"`` (official file if found and ``image_size == 64``, else rendered),
    ``"rendered"`` or ``"official"``. ``len(data)`` is 737,280; nothing per image is stored.
    """

    def __init__(self, image_size: int = 64, device: torch.device | str = "cpu", source: str = "auto") -> None:
        if image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES} (sprites move by S/64 pixels), got {image_size}")
        if source not in ("auto", "rendered", "official"):
            raise ValueError(f"source must be 'auto', 'rendered' or 'official', got {source!r}")
        super().__init__(FACTOR_SIZES, device)
        self.image_size, path = image_size, find_official() if image_size == 64 else None
        if source == "official" and path is None:
            raise FileNotFoundError(f"{OFFICIAL_FILE} not found: put it in ${DATA_VAR} (or its dsprites/ "
                                    "folder), with image_size=64, or use source='rendered'")
        self.source = "official" if path is not None and source != "rendered" else "rendered"
        if self.source == "official":
            self.packed = load_official(path).to(self.device)              # (N, 64, 8) uint8
            return
        if image_size not in _CACHE:
            _CACHE[image_size] = _render(image_size)
        self.sprites = _CACHE[image_size].to(self.device)                  # (720, P, P, T, T) bool
        corner, _, phase = _positions(image_size)
        self._corner = (corner - image_size // 4).to(self.device)          # top-left of the tile, (32,)
        self._phase = phase.to(self.device)                                # (32,)

    @property
    def nbytes(self) -> int:
        """Bytes held by the images' source (the sprites, or the packed official images)."""
        tensors = [self.packed] if self.source == "official" else [self.sprites, self._corner, self._phase]
        return sum(t.numel() * t.element_size() for t in tensors)

    def images(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) indices -> (B, 1, S, S) float32 images in {0, 1} on the device."""
        index = index.to(self.device).long()
        if self.source == "official":
            bits = self.packed[index][..., None] >> torch.arange(7, -1, -1, device=self.device)
            return (bits & 1).view(-1, 1, 64, 64).float()                  # unpack 8 pixels a byte
        c = self.factors_from_index(index)                                 # (B, 5)
        sprite = self.sprites[c[:, 0] * 240 + c[:, 1] * 40 + c[:, 2], self._phase[c[:, 4]], self._phase[c[:, 3]]]
        s, t = self.image_size, self.sprites.shape[-1]
        rows = torch.arange(s, device=self.device) - self._corner[c[:, 4]][:, None]   # (B, S) row in the tile
        cols = torch.arange(s, device=self.device) - self._corner[c[:, 3]][:, None]   # (B, S)
        ok = ((rows >= 0) & (rows < t))[:, :, None] & ((cols >= 0) & (cols < t))[:, None, :]
        b = torch.arange(len(index), device=self.device)[:, None, None]
        out = sprite[b, rows.clamp(0, t - 1)[:, :, None], cols.clamp(0, t - 1)[:, None, :]] & ok
        return out[:, None].float()                                        # (B, 1, S, S)

    def index_batches(self, batch_size: int = 64, steps: int | None = None,
                      generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """(batch_size,) index batches on the device, every batch full (drop_last).

        ``steps=None``: one epoch, a random permutation cut into len // batch_size batches (the
        rest dropped). ``steps=n``: n batches, chaining fresh permutations (epochs) as needed.
        """
        if batch_size < 1 or batch_size > len(self):
            raise ValueError(f"batch_size must be in [1, {len(self)}], got {batch_size}")
        per_epoch = len(self) // batch_size
        total = per_epoch if steps is None else steps
        dev = generator.device if generator is not None else self.device
        done = 0
        while done < total:
            order = torch.randperm(len(self), generator=generator, device=dev).to(self.device)
            for b in range(min(per_epoch, total - done)):
                yield order[b * batch_size:(b + 1) * batch_size]
            done += per_epoch

    def loader(self, batch_size: int = 64, steps: int | None = None,
               generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
        """Image batches (batch_size, 1, S, S) made on the device; epochs and steps as in `index_batches`."""
        for index in self.index_batches(batch_size, steps, generator):
            yield self.images(index)
