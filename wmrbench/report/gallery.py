"""The examples that decide A_sa, for the HTML report: the k examples with the largest share of
the normalized weight at the result's largest alpha_test, as inline PNG images (clean,
adversarial, and the perturbation scaled to be visible), with their labels, margins and shares.

Images are lossless WebP (PNG where Pillow has no WebP), inline as data: URLs. The images come from ``examples.pt`` (``evaluate --keep-examples``) or, failing that, from the
unweighted PGD points of ``adversarial.pt`` (``wmrbench attack``) beside the result. Without
either, the page still lists which examples decide A_sa (from records.csv) and says how to keep
their images.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, features
from torch import Tensor

from wmrbench.core.errors import WmrbenchError
from wmrbench.results.points import (
    ADVERSARIAL_NAME, DEFAULT_KEEP, EXAMPLES_NAME, UNKNOWN_PRED, DecidingExamples, deciding_order, examples_from_adversarial,
    load_examples,
)
from wmrbench.results.records import RECORDS_NAME, Summary, read_records


@dataclass(frozen=True)
class Figure:
    index: int  # position in the split
    label: int
    pred: str  # the predicted class at the adversarial point; "not L" where only a miss is known
    margin: float
    share: float  # of the normalized weight, 0..1
    scale: float | None = None  # its tile of the perturbation strip shows 0.5 + delta * scale


@dataclass(frozen=True)
class Strips:
    """The figures' images, tile i of each strip being figure i (tiles ``width + 1`` pixels
    apart: one white column between neighbours): data: URLs of lossless images.

    No perturbation strip: the page's script draws it from these two (0.5 + (adversarial -
    clean) * the figure's scale, per tile), which saves a third of the image bytes; the pixels
    differ from a strip drawn here only by the 8-bit rounding of the two images."""

    clean: str
    adversarial: str
    width: int  # one tile's size in pixels
    height: int

    @property
    def zoom(self) -> int:
        """The whole-number magnification that shows a tile at least 64 pixels wide (3 for MNIST,
        2 for CIFAR-10): sharp pixels, and a column wide enough for its numbers below."""
        return max(1, -(-64 // self.width))

    @property
    def pitch(self) -> int:
        """A tile and its gap, in pixels of the page: one column of the gallery's table."""
        return self.zoom * (self.width + 1)


@dataclass(frozen=True)
class Gallery:
    alpha: float
    n_examples: int
    figures: tuple[Figure, ...]
    source: str  # the file the images come from, or "" when none was kept
    note: str = ""  # why there are no images, or what went wrong reading them
    strips: Strips | None = None

    @property
    def total_share(self) -> float:
        return float(sum(f.share for f in self.figures))


# Lossless WebP where this Pillow can write it: on attacked MNIST images it is about a third smaller
# than optimized PNG (765 against 1,133 bytes per clean/adversarial/perturbation trio, measured),
# which is what keeps a 200-result page with every gallery near its size budget; every current
# browser decodes both. Either way the pixels are exact.
IMAGE_FORMAT = "WEBP" if features.check("webp") else "PNG"


def png_data_url(image: Tensor | np.ndarray, fmt: str | None = None) -> str:
    """A [C, H, W] image in [0, 1] as a data: URL of a lossless image (grey for one channel, RGB
    for three): WebP where Pillow writes it, else PNG (``fmt`` forces one)."""
    a = np.asarray(image.detach().cpu().numpy() if isinstance(image, Tensor) else image, dtype=np.float64)
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    pixels = (a * 255 + 0.5).astype(np.uint8)
    if pixels.shape[0] == 1:
        picture = Image.fromarray(pixels[0], mode="L")
    elif pixels.shape[0] == 3:
        picture = Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")
    else:
        raise WmrbenchError(f"an image of {pixels.shape[0]} channels cannot be shown (1 or 3)")
    fmt = fmt or IMAGE_FORMAT
    buffer = io.BytesIO()
    if fmt == "WEBP":
        # Lossless; quality 0 and method 4 were the fastest settings that kept the smallest size
        # (0.3 ms, 255 bytes per attacked MNIST image; method 6: 17 ms for 254 bytes).
        picture.save(buffer, format="WEBP", lossless=True, quality=0, method=4)
    else:
        picture.save(buffer, format="PNG", optimize=True)
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _scale(x: Tensor, x_adv: Tensor) -> float:
    """The factor that maps the largest |delta| to 0 or 1 in 0.5 + delta * scale: a perturbation
    of 0.3 and one of 8/255 both show, and the scale is printed under the image."""
    peak = float((x_adv.double() - x.double()).abs().max())
    return 0.5 / peak if peak > 0 else 1.0


def _pred_text(label: int, pred: int) -> str:
    return f"not {label}" if pred == UNKNOWN_PRED else str(pred)


def _strip(tiles: list[np.ndarray]) -> str:
    """[C, H, W] tiles side by side, each followed by a white column of one pixel (so that
    neighbours do not run into each other), as one image's data: URL."""
    c, h, _ = tiles[0].shape
    gap = np.ones((c, h, 1))
    return png_data_url(np.concatenate([part for tile in tiles for part in (tile, gap)], axis=2))


def _figures(ex: DecidingExamples) -> tuple[tuple[Figure, ...], Strips]:
    out = []
    for i in range(len(ex.index)):
        scale = _scale(ex.x[i], ex.x_adv[i])
        label, pred = int(ex.label[i]), int(ex.pred[i])
        out.append(Figure(int(ex.index[i]), label, _pred_text(label, pred), float(ex.margin[i]), float(ex.share[i]), scale))
    clean = [x.double().numpy() for x in ex.x]
    adversarial = [x.double().numpy() for x in ex.x_adv]
    height, width = clean[0].shape[-2:]
    return tuple(out), Strips(_strip(clean), _strip(adversarial), int(width), int(height))


def _from_records(folder: Path, alpha: float, k: int, note: str) -> Gallery:
    """Which examples decide A_sa, without their images (none were kept)."""
    records_path = folder / RECORDS_NAME
    if not records_path.is_file():
        return Gallery(alpha, 0, (), "", f"no {RECORDS_NAME} beside this result: the examples cannot be named")
    try:
        records = read_records(records_path)
    except WmrbenchError as exc:
        return Gallery(alpha, 0, (), "", f"{RECORDS_NAME} cannot be read: {exc}")
    order, share = deciding_order(records["pgd_margin"].to_numpy(), alpha, k)
    correct = records["pgd_correct"].to_numpy().astype(bool)
    figures = tuple(Figure(int(records["index"].iat[i]), int(records["label"].iat[i]),
                           _pred_text(int(records["label"].iat[i]), int(records["label"].iat[i]) if correct[i] else UNKNOWN_PRED),
                           float(records["pgd_margin"].iat[i]), float(share[i])) for i in order)
    return Gallery(alpha, len(records), figures, "", note)


def gallery(folder: Path, summary: Summary, k: int = DEFAULT_KEEP) -> Gallery:
    """The deciding examples of the result in ``folder`` at its largest alpha_test."""
    alphas = summary.config.alpha_test or (0.0,)
    alpha = float(max(alphas))
    keep_hint = (f"no images kept: evaluate again with --keep-examples {k}, or run `wmrbench attack` with this run's "
                 f"settings, to see them")
    try:
        if (folder / EXAMPLES_NAME).is_file():
            ex = load_examples(folder / EXAMPLES_NAME)
            if ex.records_sha256 and summary.records_sha256 and ex.records_sha256 != summary.records_sha256:
                return _from_records(folder, alpha, k, f"images not shown: {EXAMPLES_NAME} was kept by another evaluation "
                                                       f"of this run (its records differ); {keep_hint[len('no images kept: '):]}")
            figures, strips = _figures(_first(ex, k))
            return Gallery(ex.alpha, ex.n_examples, figures, EXAMPLES_NAME, strips=strips)
        if (folder / ADVERSARIAL_NAME).is_file():
            ex = examples_from_adversarial(folder / ADVERSARIAL_NAME, alpha, k)
            figures, strips = _figures(ex)
            return Gallery(ex.alpha, ex.n_examples, figures, ADVERSARIAL_NAME, strips=strips)
    except WmrbenchError as exc:  # a damaged image file must not hide the rest of the page
        return _from_records(folder, alpha, k, f"images not shown: {exc}")
    return _from_records(folder, alpha, k, keep_hint)


def _first(ex: DecidingExamples, k: int) -> DecidingExamples:
    if len(ex.index) <= k:
        return ex
    cut = slice(0, k)
    return DecidingExamples(ex.run, ex.alpha, ex.n_examples, ex.index[cut], ex.label[cut], ex.pred[cut], ex.x[cut],
                            ex.x_adv[cut], ex.margin[cut], ex.share[cut], ex.source)
