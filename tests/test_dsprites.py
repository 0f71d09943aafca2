"""dSprites as rendered by the course: index order, geometry, batches, the official file."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_lib import dsprites as ds
from course_lib.data import DatasetCorruptError
from course_lib.dsprites import DSprites, factors_from_index, index_from_factors


@pytest.fixture(scope="module", params=[64, 32])
def data(request) -> DSprites:
    return DSprites(request.param, source="rendered")


def grid(**fixed: int | list[int]) -> torch.Tensor:
    """Indices of every combination of the given factor classes (the others at class 0)."""
    axes = [torch.as_tensor(fixed.get(n, 0)).view(-1) for n in ds.FACTOR_NAMES]
    return index_from_factors(torch.cartesian_prod(*axes).view(-1, 5))


def test_count_and_index_order() -> None:
    assert len(DSprites(32)) == 737_280 == int(np.prod(ds.FACTOR_SIZES))
    index = torch.arange(737_280)
    classes = factors_from_index(index)
    assert torch.equal(index_from_factors(classes), index)
    # the official order is numpy's C order over (shape, scale, orientation, posX, posY): posY fastest
    reference = np.stack(np.unravel_index(index.numpy(), ds.FACTOR_SIZES), -1)
    assert np.array_equal(classes.numpy(), reference)
    assert factors_from_index(torch.tensor(1)).tolist() == [0, 0, 0, 0, 1]
    assert factors_from_index(torch.tensor(32)).tolist() == [0, 0, 0, 1, 0]
    assert [len(v) for v in ds.FACTOR_VALUES] == list(ds.FACTOR_SIZES)
    assert ds.FACTOR_VALUES[2][0] == 0 and ds.FACTOR_VALUES[2][-1] == pytest.approx(2 * np.pi)


def test_images_are_binary_float_batches_on_the_device(data: DSprites) -> None:
    x = data.images(data.sample_index(256, torch.Generator().manual_seed(0)))
    s = data.image_size
    assert x.shape == (256, 1, s, s) and x.dtype == torch.float32 and x.device == data.device
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert bool((x.sum((1, 2, 3)) > 0).all()), "every image shows a sprite"


def test_every_sprite_stays_inside_the_frame(data: DSprites) -> None:
    # all 720 base sprites at the four extreme positions keep every pixel of their rendering
    index = grid(shape=[0, 1, 2], scale=list(range(6)), orientation=list(range(40)), posX=[0, 31], posY=[0, 31])
    x = data.images(index)
    c = data.factors(index)
    rendered = data.sprites[c[:, 0] * 240 + c[:, 1] * 40 + c[:, 2], data._phase[c[:, 4]], data._phase[c[:, 3]]]
    assert torch.equal(x.sum((1, 2, 3)), rendered.sum((1, 2)).float()), "a sprite was cut by the frame"
    assert x[..., [0, -1], :].sum() + x[..., :, [0, -1]].sum() == 0, "no sprite touches the frame's edge"


def test_posx_moves_right_and_posy_moves_down() -> None:
    d = DSprites(64, source="rendered")
    a = d.images(grid(shape=[0, 1, 2], scale=5, orientation=[0, 7, 13], posX=list(range(31)), posY=9))
    b = d.images(grid(shape=[0, 1, 2], scale=5, orientation=[0, 7, 13], posX=list(range(1, 32)), posY=9))
    assert torch.equal(b, torch.roll(a, 1, dims=-1)), "posX + 1 = one pixel to the right at 64 x 64"
    a = d.images(grid(shape=[0, 1, 2], scale=5, orientation=[0, 7, 13], posX=9, posY=list(range(31))))
    b = d.images(grid(shape=[0, 1, 2], scale=5, orientation=[0, 7, 13], posX=9, posY=list(range(1, 32))))
    assert torch.equal(b, torch.roll(a, 1, dims=-2)), "posY + 1 = one pixel down at 64 x 64"
    for s in (32, 64):  # a square's centroid: column from posX, row from posY, range centred in the frame
        x = DSprites(s, source="rendered").images(grid(shape=0, scale=5, posX=[0, 31], posY=[0, 31]))[:, 0]
        rows, cols = torch.arange(s).float()[:, None], torch.arange(s).float()[None, :]
        r, c = (x * rows).sum((1, 2)) / x.sum((1, 2)), (x * cols).sum((1, 2)) / x.sum((1, 2))
        tol = 0.05 if s == 64 else 0.5                                        # 32 x 32: half-pixel rasterisation
        assert float(c[2] - c[0]) == pytest.approx(31 * s / 64, abs=tol)    # grid order: (posX, posY)
        assert float(r[1] - r[0]) == pytest.approx(31 * s / 64, abs=tol)
        assert float(c[0] + c[2]) == pytest.approx(s - 1, abs=tol) and float(r[0] + r[1]) == pytest.approx(s - 1, abs=tol)


def test_pixel_mass_grows_with_scale(data: DSprites) -> None:
    x = data.images(grid(shape=[0, 1, 2], scale=list(range(6)), orientation=list(range(40)), posX=16, posY=16))
    mass = x.sum((1, 2, 3)).view(3, 6, 40).mean(-1)      # per shape and scale, mean over orientations
    assert bool((mass.diff(dim=1) > 0).all()), mass


def dilate(x: torch.Tensor) -> torch.Tensor:
    return F.max_pool2d(x, 3, 1, 1)                     # one pixel in every direction (3 x 3)


def test_square_repeats_every_quarter_turn_and_the_heart_does_not() -> None:
    # Orientation steps are 2π/39, so class i + 10 is π/2 + π/78 after class i: the square comes back
    # up to that 2.3° and rasterisation. Tolerance: each image lies inside the other dilated by one pixel.
    d = DSprites(64, source="rendered")
    def pair(shape: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = d.images(grid(shape=shape, scale=list(range(6)), orientation=list(range(30)), posX=16, posY=16))
        b = d.images(grid(shape=shape, scale=list(range(6)), orientation=list(range(10, 40)), posX=16, posY=16))
        return a, b
    a, b = pair(0)
    assert bool((a <= dilate(b)).all() and (b <= dilate(a)).all())
    assert bool(((a != b).sum((1, 2, 3)) <= 0.1 * a.sum((1, 2, 3))).all()), "and at most 10% of its pixels change"
    a, b = pair(2)
    far = ((a > dilate(b)) | (b > dilate(a))).flatten(1).any(1)
    assert bool(far.all()), "every quarter-turned heart differs by more than a pixel"
    # 0 and 2π are both classes (a duplicate kept from the original): identical images
    first = d.images(grid(shape=[0, 1, 2], scale=list(range(6)), orientation=0, posX=3, posY=20))
    last = d.images(grid(shape=[0, 1, 2], scale=list(range(6)), orientation=39, posX=3, posY=20))
    assert torch.equal(first, last)


def test_renderer_memory_is_small(data: DSprites) -> None:
    assert data.nbytes < 50e6, f"{data.nbytes / 1e6:.1f} MB"


def test_fixed_factor_batches_and_reproducible_sampling(data: DSprites) -> None:
    g = torch.Generator().manual_seed(1)
    index = data.sample_fixed_factor(torch.tensor([0, 2, 4]), 64, g)      # (V, B)
    c = data.factors(index)                                                # (3, 64, 5)
    for v, f in enumerate([0, 2, 4]):
        assert (c[v, :, f] == c[v, 0, f]).all()
        others = [k for k in range(5) if k != f]
        assert (c[v][:, others].unique(dim=0).shape[0]) > 50
    assert data.sample_fixed_factor(3, 16, g).shape == (16,)
    one = data.sample_index(8, torch.Generator().manual_seed(5))
    assert torch.equal(one, data.sample_index(8, torch.Generator().manual_seed(5)))


def test_loader_batches_are_full_and_epochs_are_permutations() -> None:
    d = DSprites(32, source="rendered")
    batches = list(d.loader(100, steps=3, generator=torch.Generator().manual_seed(0)))
    assert len(batches) == 3 and all(x.shape == (100, 1, 32, 32) for x in batches)
    epoch = list(d.index_batches(100_000, generator=torch.Generator().manual_seed(0)))
    assert len(epoch) == 7 and all(len(b) == 100_000 for b in epoch)      # 737,280 // 100,000, rest dropped
    assert torch.cat(epoch).unique().numel() == 700_000
    assert len(list(d.index_batches(300_000, steps=5))) == 5              # steps cross epoch boundaries


def test_bad_arguments_and_malformed_official_file(tmp_path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="image_size"):
        DSprites(50)
    bad = tmp_path / ds.OFFICIAL_FILE
    np.savez(bad, imgs=np.zeros((10, 64, 64), np.uint8), latents_classes=np.zeros((10, 6), np.int64))
    monkeypatch.setenv("VAE_COURSE_DATA", str(tmp_path))
    with pytest.raises(DatasetCorruptError, match="expected \\(737280, 64, 64\\)"):
        DSprites(64)
    bad.write_text("not a zip file")
    with pytest.raises(DatasetCorruptError, match="download it again"):
        ds.load_official(bad)
    assert DSprites(32).source == "rendered"                              # the official file is 64 x 64 only


def test_pixel_agreement_with_the_official_file() -> None:
    if ds.find_official() is None:
        pytest.skip(f"{ds.OFFICIAL_FILE} not in $VAE_COURSE_DATA: nothing to compare with")
    official, ours = DSprites(64, source="official"), DSprites(64, source="rendered")
    index = official.sample_index(2000, torch.Generator().manual_seed(0))
    a, b = official.images(index), ours.images(index)
    agree = float((a == b).float().mean())
    iou = float((a * b).sum() / ((a + b) > 0).sum())
    print(f"\nrendered vs official dSprites: pixel agreement {agree:.4f}, sprite IoU {iou:.3f}")
    assert agree > 0.9
