"""The batched device augmentation is torchvision's RandomCrop(size, padding=4) + RandomHorizontalFlip.

Exactness: for the same draws (crop corner, flip), every image equals torchvision's functional
crop (+ hflip) of the zero-padded image. Distribution: the corners and flips we draw have the
distribution of those torchvision's transforms draw (both identified from the output images).
"""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF

from wmrbench.data.augment import PADDING, CropFlip, apply_crop_flip, draw_crop_flip, random_crop_flip


def _torchvision_reference(x: torch.Tensor, draws: CropFlip, padding: int) -> torch.Tensor:
    """What RandomCrop(size, padding) + RandomHorizontalFlip produce for these draws, per image."""
    out = []
    height, width = x.shape[-2:]
    for image, top, left, flip in zip(x, draws.top.tolist(), draws.left.tolist(), draws.flip.tolist()):
        cropped = TF.crop(TF.pad(image, [padding], fill=0), top, left, height, width)
        out.append(TF.hflip(cropped) if flip else cropped)
    return torch.stack(out)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_same_crops_and_flips_as_torchvision_for_the_same_draws(size: int, dtype: torch.dtype) -> None:
    gen = torch.Generator().manual_seed(size)
    x = torch.randint(1, 256, (64, 3, size, size), generator=gen).to(dtype)  # no zeros: padding shows
    draws = draw_crop_flip(len(x), PADDING, torch.Generator().manual_seed(1))
    # the draws cover every corner row/column and both flip states, so the comparison is thorough
    assert set(draws.top.tolist()) == set(draws.left.tolist()) == set(range(2 * PADDING + 1))
    assert draws.flip.any() and not draws.flip.all()
    ours = apply_crop_flip(x, draws, PADDING)
    assert ours.dtype == dtype and ours.shape == x.shape
    assert torch.equal(ours, _torchvision_reference(x, draws, PADDING))


def test_random_crop_flip_is_reproducible_and_changes_images() -> None:
    x = torch.rand(32, 3, 32, 32)
    a = random_crop_flip(x, torch.Generator().manual_seed(7))
    b = random_crop_flip(x, torch.Generator().manual_seed(7))
    c = random_crop_flip(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a, x)


def test_corner_and_flip_distribution_matches_torchvision() -> None:
    """Identify (top, left, flip) from the output of both pipelines on an image with distinct
    pixels, then compare the two empirical distributions of the 9 x 9 x 2 outcomes."""
    size, n = 8, 4000
    image = (torch.arange(size * size, dtype=torch.float32) + 1).view(1, 1, size, size)  # distinct, nonzero
    outcomes = {}
    for top in range(2 * PADDING + 1):
        for left in range(2 * PADDING + 1):
            for flip in (False, True):
                draws = CropFlip(torch.tensor([top]), torch.tensor([left]), torch.tensor([flip]))
                key = apply_crop_flip(image, draws, PADDING).flatten().tolist()
                outcomes[tuple(key)] = (top, left, flip)
    assert len(outcomes) == 162  # every outcome gives a different image

    def histogram(images: torch.Tensor) -> torch.Tensor:
        counts = torch.zeros(162)
        keys = list(outcomes)
        index = {k: i for i, k in enumerate(keys)}
        for img in images:
            counts[index[tuple(img.flatten().tolist())]] += 1
        return counts

    ours = histogram(random_crop_flip(image.expand(n, -1, -1, -1), torch.Generator().manual_seed(3)))
    torch.manual_seed(3)  # torchvision draws from the global generator
    transform = T.Compose([T.RandomCrop(size, padding=PADDING), T.RandomHorizontalFlip()])
    theirs = histogram(torch.stack([transform(image[0]) for _ in range(n)]))
    expected = n / 162
    for counts in (ours, theirs):
        # chi-square against uniform, 161 degrees of freedom: the 0.999 quantile is about 222
        chi2 = ((counts - expected) ** 2 / expected).sum().item()
        assert chi2 < 222, chi2
        assert counts.min() > 0
    # and the two pipelines agree with each other (two-sample chi-square, same threshold)
    chi2_two = (((ours - theirs) ** 2) / (ours + theirs)).sum().item()
    assert chi2_two < 222, chi2_two
    # flips: half of each
    flips_ours = sum(c for (k, c) in zip(outcomes.values(), ours.tolist()) if k[2])
    assert abs(flips_ours / n - 0.5) < 0.03


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA: augmentation on the GPU without host syncs")
def test_on_cuda_without_host_syncs() -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = random_crop_flip(x, gen)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    draws = draw_crop_flip(len(x), PADDING, torch.Generator(device="cuda").manual_seed(0))
    assert out.device.type == "cuda"
    assert torch.equal(out.cpu(), _torchvision_reference(x.cpu(), CropFlip(draws.top.cpu(), draws.left.cpu(), draws.flip.cpu()), PADDING))


def test_reflection_padding_matches_torch_reflect_pad_then_crop() -> None:
    """padding_mode="reflect" crops from the mirror-padded image (the authors' PGD-AT crop)."""
    torch.manual_seed(1)
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    draws = draw_crop_flip(16, 4, torch.Generator().manual_seed(3))
    out = apply_crop_flip(x, draws, 4, padding_mode="reflect")
    padded = torch.nn.functional.pad(x.float(), (4, 4, 4, 4), mode="reflect")
    for i in range(16):
        top, left = int(draws.top[i]), int(draws.left[i])
        crop = padded[i, :, top:top + 8, left:left + 8]
        expected = crop.flip(-1) if draws.flip[i] else crop
        assert torch.equal(out[i].float(), expected), i
    assert out.dtype == torch.uint8
    zeros = apply_crop_flip(x, draws, 4)
    assert not torch.equal(zeros, out)  # the border differs: zeros vs mirrored pixels
