"""Latent explorers: frames and labels, the static HTML (self-contained, small), the live
ipywidgets face, and a headless Chromium that drags the static slider."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.stats import norm
from torch.distributions import Bernoulli, Categorical, Independent, MixtureSameFamily, Normal

from course_lib import widgets

ipywidgets = pytest.importorskip("ipywidgets")


# ----------------------------------------------------------------------------- a tiny model
class LinearDecoder(torch.nn.Module):
    """p(x|z) = Bernoulli(sigmoid(W z + b)) with smooth (blurred) columns, like a trained decoder."""

    def __init__(self, m: int, used: int | None = None, flat: bool = False, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        basis = torch.randn(m, 1, 28, 28, generator=g)
        kernel = torch.exp(-torch.arange(-4, 5.0) ** 2 / 8)
        kernel = (kernel[:, None] * kernel[None, :] / kernel.sum() ** 2)[None, None]
        basis = torch.nn.functional.conv2d(basis, kernel, padding=4) * 6       # (M, 1, 28, 28), smooth
        if used is not None:
            basis[used:] = 0                                                   # dims >= used do nothing
        self.weight = torch.nn.Parameter(basis.reshape(m, 784).T)              # (784, M)
        self.bias = torch.nn.Parameter(torch.full((784,), -1.0))
        self.flat = flat

    def decode(self, z: torch.Tensor):
        logits = z @ self.weight.T + self.bias                                 # (B, 784)
        if self.flat:
            return Independent(Bernoulli(logits=logits), 1)
        return Independent(Bernoulli(logits=logits.reshape(-1, 1, 28, 28)), 3)


def std_normal(m: int) -> Independent:
    return Independent(Normal(torch.zeros(m), torch.ones(m)), 1)


def mixture(m: int, k: int = 4) -> MixtureSameFamily:
    g = torch.Generator().manual_seed(1)
    comp = Independent(Normal(3 * torch.randn(k, m, generator=g), 0.5 * torch.ones(k, m)), 1)
    return MixtureSameFamily(Categorical(logits=torch.zeros(k)), comp)


def data_of(page_html: str) -> dict:
    """The explorer's JSON payload (frames, labels) from its static HTML."""
    found = re.findall(r'<script type="application/json" id="[^"]+">(.*?)</script>', page_html, re.S)
    assert len(found) == 1
    return json.loads(found[0].replace("<\\/", "</"))


def pixels(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.array(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))))


def assert_self_contained(page_html: str) -> None:
    assert "http://" not in page_html and "https://" not in page_html and "//cdn" not in page_html
    assert not re.search(r"<script[^>]+src=", page_html), "no external scripts"
    assert not re.search(r"<link\b", page_html), "no external style sheets"
    srcs = re.findall(r'<img[^>]+src="([^"]+)"', page_html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)


# ----------------------------------------------------------------------------- static frames
def test_traversal_frames_labels_and_html() -> None:
    dec = LinearDecoder(5)
    ex = widgets.traversal(dec.decode, std_normal(5), span=2.0, steps=7)
    page = ex.static_html()
    assert_self_contained(page)
    d = data_of(page)
    assert len(d["sliders"]) == 1 and d["sliders"][0]["labels"] == ["-2.0σ", "-1.3σ", "-0.7σ", "+0.0σ",
                                                                    "+0.7σ", "+1.3σ", "+2.0σ"]
    assert len(d["images"]) == 5 and all(len(im["frames"]) == 7 for im in d["images"]) and ex.n_frames == 7
    assert d["images"][2]["captions"][0] == "z[2] = -2.00"
    # frame k of dimension i is E[x | z0 + offset_k sigma e_i], decoded: check one
    z = torch.zeros(1, 5)
    z[0, 2] = 2.0
    want = np.round(np.round(dec.decode(z).mean[0, 0].detach().numpy() * 63) * 255 / 63)
    assert np.abs(pixels(d["images"][2]["frames"][6]).astype(float) - want).max() <= 1
    # every dimension's frames change along the traversal, the middle frames agree (all at z0)
    assert all(len(set(im["frames"])) == 7 for im in d["images"])
    assert len({im["frames"][3] for im in d["images"]}) == 1
    assert ex._repr_html_().count("<input type=\"range\"") == 1
    # unique ids: two explorers on one page do not clash
    ids = lambda h: set(re.findall(r'id="([^"]+)"', h))
    assert not ids(page) & ids(ex.static_html())


def test_traversal_static_face_shows_every_dimension_at_every_offset() -> None:
    """Below the slider: one picture with a row per dimension and a column per offset, each cell
    the same decoded image as the slider's frame (dimension, offset)."""
    dec = LinearDecoder(5)
    ex = widgets.traversal(dec.decode, std_normal(5), dims=[0, 3, 4], span=2.0, steps=7)
    page = ex.static_html()
    assert_self_contained(page)
    tables = [(uri, cap) for cap, uri, _ in ex.figures]
    assert len(tables) == 1 and "rows z[0], z[3], z[4]" in tables[0][1] and "-2.0σ" in tables[0][1]
    assert tables[0][0] in page and tables[0][1] in page
    grid = pixels(tables[0][0]).astype(float)
    assert grid.shape == (3 * 29 - 1, 7 * 29 - 1)                       # 3 rows x 7 columns, 1-pixel gaps
    d = data_of(page)
    for row in range(3):
        for col in (0, 3, 6):
            cell = grid[row * 29:row * 29 + 28, col * 29:col * 29 + 28]
            frame = pixels(d["images"][row]["frames"][col]).astype(float)
            assert np.abs(cell - frame).max() <= 1, (row, col)
    assert np.all(grid[28, :] == 255) and np.all(grid[:, 28] == 255)     # white gaps between cells


def test_traversal_dims_default_active_and_errors() -> None:
    ex = widgets.traversal(LinearDecoder(12).decode, std_normal(12))
    assert [c for c, _, _ in ex.images] == [f"z[{d}]" for d in range(8)], "the first 8 by default"
    ex = widgets.traversal(LinearDecoder(12).decode, std_normal(12), dims=[3, 11])
    assert [c for c, _, _ in ex.images] == ["z[3]", "z[11]"]
    # only dims 0..2 affect this decoder; put its weights on dims 9..11 by permuting z
    dec = LinearDecoder(12, used=3)
    ex = widgets.traversal(lambda z: dec.decode(z.flip(-1)), std_normal(12), dims="active")
    assert {"z[9]", "z[10]", "z[11]"} <= {c for c, _, _ in ex.images} and len(ex.images) == 8
    with pytest.raises(ValueError, match="z0 has 3 entries"):
        widgets.traversal(dec.decode, std_normal(12), z0=torch.zeros(3))
    assert len(widgets.traversal(dec.decode, std_normal(12), dims=torch.tensor([1, 2])).images) == 2
    with pytest.raises(ValueError, match="'active'"):
        widgets.traversal(dec.decode, std_normal(12), dims="all")
    with pytest.raises(ValueError, match="out of range"):
        widgets.traversal(dec.decode, std_normal(12), dims=[12])


def test_bad_codes_and_bad_decoders_get_a_message_that_says_what_to_do() -> None:
    """NaN survives clamp(0, 1) and used to be drawn as black pixels; wrong dtypes crashed deep inside."""
    dec, prior = LinearDecoder(4), std_normal(4)
    for z0, match in ((torch.tensor([0.0, float("nan"), 0.0, 0.0]), r"non-finite entries at \[1\].*reload"),
                      (torch.zeros(4, dtype=torch.complex64), "dtype torch.complex64.*real"),
                      (torch.zeros(4, dtype=torch.bool), "dtype torch.bool"),
                      ("0 0 0 0", "tensor, array or list of numbers"),
                      (torch.zeros(2, 2, 2), r"has 8 entries.*shape \(4,\)")):
        with pytest.raises((ValueError, TypeError), match=match):
            widgets.traversal(dec.decode, prior, z0=z0)
    assert widgets.traversal(dec.decode, prior, z0=[0, 1, 0, 0]).images          # ints and lists are fine
    assert widgets.traversal(dec.decode, prior, z0=np.zeros(4)).images
    with pytest.raises(ValueError, match="z_end has non-finite"):
        widgets.interpolation(dec.decode, torch.zeros(4), torch.full((4,), float("inf")))
    with pytest.raises(ValueError, match="z0 has non-finite"):
        widgets.manifold(dec.decode, prior, z0=torch.full((4,), float("nan")))
    for kwargs in ({"span": 0.0}, {"span": float("nan")}, {"steps": 1}, {"steps": 2.5}):
        with pytest.raises(ValueError, match="span > 0 and an integer steps"):
            widgets.traversal(dec.decode, prior, **kwargs)
    with pytest.raises(ValueError, match="steps >= 2"):
        widgets.interpolation(dec.decode, torch.zeros(4), torch.ones(4), steps=1)
    broken = lambda z: dec.decode(z).mean * float("nan")                         # noqa: E731  diverged weights
    with pytest.raises(ValueError, match="non-finite pixels in 11 of 11 images.*reload"):
        widgets.traversal(broken, prior, dims=[0], steps=11)
    levels = lambda z: (dec.decode(z).mean * 255).to(torch.uint8)                 # noqa: E731
    with pytest.raises(TypeError, match="torch.uint8 images; return floats in \\[0, 1\\]"):
        widgets.traversal(levels, prior)


def test_traversal_uses_the_prior_scale() -> None:
    prior = Independent(Normal(torch.ones(3), 2 * torch.ones(3)), 1)
    d = data_of(widgets.traversal(LinearDecoder(3).decode, prior, span=3.0, steps=3).static_html())
    assert d["images"][0]["captions"] == ["z[0] = -5.00", "z[0] = +1.00", "z[0] = +7.00"]
    d = data_of(widgets.traversal(LinearDecoder(3).decode, prior, span=3.0, steps=3, relative=False).static_html())
    assert d["images"][0]["captions"] == ["z[0] = -2.00", "z[0] = +1.00", "z[0] = +4.00"]
    # a mixture prior: its moments (law of total variance) set the scale and the centre
    mix = mixture(3)
    d = data_of(widgets.traversal(LinearDecoder(3).decode, mix, span=1.0, steps=3).static_html())
    lo, mid = (float(c.split("= ")[1]) for c in d["images"][1]["captions"][:2])
    assert mid == pytest.approx(float(mix.mean[1]), abs=0.01)
    assert mid - lo == pytest.approx(float(mix.stddev[1]), abs=0.01)


def test_image_shapes_flat_tensor_and_categorical_agree() -> None:
    z = torch.randn(4, 6)
    ref = widgets.decode_images(LinearDecoder(6).decode, z)
    assert ref.shape == (4, 28, 28) and 0 <= float(ref.min()) and float(ref.max()) <= 1
    assert torch.allclose(widgets.decode_images(LinearDecoder(6, flat=True).decode, z), ref)
    assert torch.allclose(widgets.decode_images(lambda z: LinearDecoder(6).decode(z).mean, z), ref)
    # 256-way categorical per pixel: no .mean in torch, the explorer takes E[level] / 255
    logits = torch.zeros(4, 1, 28, 28, 256)
    logits[..., 51] = 50.0
    img = widgets.decode_images(lambda z: Independent(Categorical(logits=logits), 3), z)
    assert torch.allclose(img, torch.full((4, 28, 28), 0.2), atol=1e-4)
    with pytest.raises(ValueError, match="not a square"):
        widgets.decode_images(lambda z: torch.zeros(len(z), 30), z)


def test_interpolation_endpoints_and_slerp() -> None:
    dec = LinearDecoder(4)
    a, b = torch.tensor([2.0, 0, 0, 0]), torch.tensor([0, 2.0, 0, 0])
    ex = widgets.interpolation(dec.decode, a, b, steps=5)
    page = ex.static_html()
    assert_self_contained(page)
    d = data_of(page)
    assert d["sliders"][0]["labels"] == ["0.00", "0.25", "0.50", "0.75", "1.00"]
    frames = d["images"][0]["frames"]
    assert len(frames) == 5 and frames[0] == widgets.png_uri(widgets.decode_images(dec.decode, a[None])[0])
    assert frames[-1] == widgets.png_uri(widgets.decode_images(dec.decode, b[None])[0])
    t = torch.linspace(0, 1, 5)
    assert torch.allclose(widgets._slerp(a, b, t).norm(dim=1), torch.full((5,), 2.0), atol=1e-5)
    assert widgets._slerp(a, b, t)[2].tolist() == pytest.approx([2 ** 0.5, 2 ** 0.5, 0, 0], abs=1e-5)
    assert "slerp" in widgets.interpolation(dec.decode, a, b, method="slerp").title
    with pytest.raises(ValueError, match="method"):
        widgets.interpolation(dec.decode, a, b, method="cubic")


def test_manifold_gaussian_quantiles_mixture_box_and_errors() -> None:
    dec = LinearDecoder(2)
    ex = widgets.manifold(dec.decode, std_normal(2), grid=7)
    page = ex.static_html()
    assert_self_contained(page)
    d = data_of(page)
    assert ex.n_frames == 49 and len(d["images"][0]["frames"]) == 49 and len(d["sliders"]) == 2
    # Kingma & Welling: the axes sit at Phi^{-1} of evenly spaced probabilities
    want = norm.ppf(np.linspace(0.05, 0.95, 7))
    got = [float(s.split("= ")[1]) for s in d["sliders"][0]["labels"]]
    assert got == pytest.approx(want, abs=0.006)
    assert d["grid"] == {"n": 7, "cell": 28}
    assert pixels(ex.grid[0]).shape == (7 * 28, 7 * 28)
    # frame k = i0 * n + i1; the grid picture has z[1] rising upwards: its top-left is (0, n-1)
    top_left = pixels(ex.grid[0])[:28, :28]
    assert np.array_equal(top_left, pixels(d["images"][0]["frames"][0 * 7 + 6]))
    # a mixture prior: an even box inside the sample quantiles
    mix = mixture(2)
    labels = data_of(widgets.manifold(dec.decode, mix, grid=5).static_html())["sliders"][1]["labels"]
    vals = np.array([float(s.split("= ")[1]) for s in labels])
    s = mix.sample((20000,))[:, 1]
    assert np.allclose(np.diff(vals), np.diff(vals)[0], atol=0.011)
    assert vals[0] == pytest.approx(float(s.quantile(0.05)), abs=0.3)
    # a fixed span, and a slice of a higher-dimensional latent
    ex = widgets.manifold(LinearDecoder(5).decode, std_normal(5), grid=3, span=2.0, dims=(1, 3))
    assert [c for c, _ in ex.sliders] == ["z[1] (across)", "z[3] (up)"]
    assert ex.sliders[0][1] == ["z[1] = -2.00", "z[1] = +0.00", "z[1] = +2.00"]
    with pytest.raises(ValueError, match="two distinct latent dims"):
        widgets.manifold(LinearDecoder(1).decode, std_normal(1))


def test_static_html_is_small() -> None:
    """8 dimensions x 11 steps: well under 200 KB; a 15 x 15 manifold (225 frames + the grid) under 300 KB.

    (This random decoder is rougher than a trained one, whose frames compress better.)"""
    sizes = {"traversal": len(widgets.traversal(LinearDecoder(8).decode, std_normal(8)).static_html()),
             "manifold": len(widgets.manifold(LinearDecoder(2).decode, std_normal(2), grid=15).static_html())}
    assert sizes["traversal"] < 120_000 and sizes["manifold"] < 300_000, sizes


# ----------------------------------------------------------------------------- live face
def _png(widget) -> bytes:
    return bytes(widget.value)


def test_live_traversal_moves_the_image() -> None:
    ex = widgets.traversal(LinearDecoder(3).decode, std_normal(3))
    box = ex.live()
    assert isinstance(box, ipywidgets.Widget) and set(ex.controls) == {"z[0]", "z[1]", "z[2]"}
    before = _png(ex.image)
    ex.controls["z[1]"].value = ex.controls["z[1]"].max
    after = _png(ex.image)
    assert after != before and Image.open(io.BytesIO(after)).size == (28 * 5, 28 * 5)
    # many dimensions: a dimension selector and one slider at a time
    ex = widgets.traversal(LinearDecoder(10).decode, std_normal(10), dims=range(10))
    ex.live()
    assert len(ex.controls) == 10
    before = _png(ex.image)
    ex.controls["z[9]"].value = ex.controls["z[9]"].min
    assert _png(ex.image) != before


def test_live_interpolation_and_manifold_move_the_image() -> None:
    ex = widgets.interpolation(LinearDecoder(3).decode, torch.full((3,), -2.0), torch.full((3,), 2.0))
    ex.live()
    before = _png(ex.image)
    ex.controls["t"].value = 1.0
    assert _png(ex.image) != before
    before = _png(ex.image)
    ex.controls["method"].value = "slerp"
    ex.controls["t"].value = 0.3
    assert _png(ex.image) != before

    ex = widgets.manifold(LinearDecoder(2).decode, mixture(2), grid=5)
    box = ex.live()
    grid_picture = box.children[1].children[2]
    before, grid_before = _png(ex.image), _png(grid_picture)
    ex.controls["z[0]"].value = ex.controls["z[0]"].max
    assert _png(ex.image) != before and _png(grid_picture) != grid_before   # the red dot moved too


def test_show_picks_the_face_for_who_is_reading(monkeypatch) -> None:
    """Static HTML in a book build or CI, live widgets when a person watches a notebook."""
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    ex = widgets.interpolation(LinearDecoder(2).decode, torch.zeros(2), torch.ones(2), steps=3)
    for var in ("JPY_SESSION_NAME", "COLAB_RELEASE_TAG", "VSCODE_PID", "CI"):
        monkeypatch.delenv(var, raising=False)
    ex.show()                                                               # no frontend: static
    assert isinstance(shown[-1], IPython.display.HTML) and 'type="range"' in shown[-1].data
    ex.show(live=True)
    assert type(shown[-1]).__name__ == "VBox" and ex.image is not None
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release")                      # a person on Colab: live
    ex.show()
    assert type(shown[-1]).__name__ == "VBox"
    monkeypatch.setenv("CI", "true")                                        # CI never waits on widgets
    ex.show()
    assert isinstance(shown[-1], IPython.display.HTML) and len(shown) == 4


# ----------------------------------------------------------------------------- headless Chromium
@pytest.fixture()
def chromium_page(browser):
    """A fresh page of the session's headless Chromium (`browser` comes from tests/conftest.py)."""
    page = browser.new_page()
    yield page
    page.close()


@pytest.mark.browser
def test_static_slider_changes_the_image_in_chromium(chromium_page, tmp_path) -> None:
    page = chromium_page
    trav = widgets.traversal(LinearDecoder(4).decode, std_normal(4), steps=5)
    mani = widgets.manifold(LinearDecoder(2).decode, std_normal(2), grid=5)
    doc = tmp_path / "explorers.html"
    doc.write_text(f"<!doctype html><meta charset=utf-8><body>{trav.static_html()}{mani.static_html()}"
                   f"{trav.static_html()}</body>", encoding="utf-8")
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(doc.as_uri())
    sliders, imgs = page.locator("input[type=range]"), page.locator(".latent-explorer img")
    assert sliders.count() == 1 + 2 + 1
    src = lambda i: imgs.nth(i).get_attribute("src")
    first, other = [src(i) for i in range(4)], src(imgs.count() - 1)
    sliders.nth(0).focus()
    page.keyboard.press("ArrowRight")                         # the first traversal, one step up
    assert all(src(i) != first[i] for i in range(4)), "every dimension's image moved"
    label = page.locator(".latent-explorer span").first.text_content()
    assert label == "+1.5σ"
    assert src(imgs.count() - 1) == other, "the third explorer on the page is independent"
    assert src(4) == trav.figures[0][1], "the traversal's table of every frame stays as it is"
    # the manifold (after the traversal's 4 frames and its table): the cell image changes, the box follows
    cell = imgs.nth(5)
    box = page.locator("[id$='-box']")
    before, left = cell.get_attribute("src"), box.evaluate("e => e.style.left")
    sliders.nth(1).focus()
    page.keyboard.press("End")
    assert cell.get_attribute("src") != before and box.evaluate("e => e.style.left") != left
    assert box.evaluate("e => e.style.left") == "80%"        # column 4 of 5
    assert box.evaluate("e => e.style.top") == "40%"         # z[1] at its middle: row 2 of 5, from the top
    sliders.nth(2).focus()
    page.keyboard.press("Home")                               # lowest z[1]: the bottom row
    assert box.evaluate("e => e.style.top") == "80%"
    assert not errors, errors
    assert all(u.startswith(("file:", "data:")) for u in requests), requests


# ----------------------------------------------------------------------------- Colab's ipywidgets
COLAB_IPYWIDGETS = ("ipywidgets==7.7.1", "widgetsnbextension~=3.6.0", "jupyterlab_widgets>=1.0.0,<2", "ipython_genutils")


def test_live_widgets_work_under_colabs_ipywidgets_7_7_1(tmp_path_factory) -> None:
    """Colab ships ipywidgets 7.7.1 and the course must not upgrade it: the live tests above run
    again in a subprocess that sees 7.7.1 first on its path (installed into a folder, not the venv)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    target = root / ".venv" / "ipywidgets-7.7.1" if (root / ".venv").is_dir() else tmp_path_factory.mktemp("w771")
    if not (target / "ipywidgets" / "__init__.py").is_file():
        got = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                              *COLAB_IPYWIDGETS], capture_output=True, text=True)
        if got.returncode and not os.environ.get("CI"):
            pytest.skip(f"cannot install ipywidgets 7.7.1 here: {got.stderr.strip()[-200:]}")
        assert got.returncode == 0, got.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(root)]), "EXPECT_IPYWIDGETS": "7.7.1"}
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-o", "addopts=", "-p", "no:cacheprovider",
                           str(Path(__file__)), "-k", "(live_ or expected_ipywidgets) and not colab"], capture_output=True, text=True,
                          env=env, cwd=root)
    assert done.returncode == 0 and " passed" in done.stdout, done.stdout[-2000:]


def test_the_expected_ipywidgets_is_the_one_imported() -> None:
    import os

    expected = os.environ.get("EXPECT_IPYWIDGETS")
    assert expected is None or ipywidgets.__version__ == expected, ipywidgets.__version__
