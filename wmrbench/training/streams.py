"""The random streams of a training epoch, derived from (seed, epoch, rank) when the epoch starts.

Every random stream of an epoch (shuffle, attack starts, dropout, augmentation) is seeded from
(seed, epoch, rank, stream), so a checkpoint needs no RNG state and resume is exact with any
number of processes (bit-identical for the same number).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch

# Random streams of an epoch, each seeded from (seed, epoch, rank, stream).
SHUFFLE, ATTACK, DROPOUT, AUGMENT = 0, 1, 2, 3


def stream_seed(seed: int, epoch: int, rank: int, stream: int) -> int:
    """A well-mixed 63-bit seed for one random stream of one epoch on one rank."""
    words = np.random.SeedSequence(seed % 2**64, spawn_key=(epoch, rank, stream)).generate_state(2, np.uint32)
    return (int(words[0]) << 31 ^ int(words[1])) & (2**63 - 1)


def epoch_generators(seed: int, epoch: int, rank: int, device: torch.device) -> dict[str, torch.Generator]:
    """Fresh random streams for one epoch on one rank; also reseeds the global RNG (dropout).

    Deriving them from (seed, epoch, rank) instead of carrying them over from the previous
    epoch is what makes resume exact without saving any RNG state, with any number of ranks:
    the shuffle is the same on every rank (one global permutation, each rank takes its shard),
    the attack starts and dropout masks differ per rank.
    """
    torch.manual_seed(stream_seed(seed, epoch, rank, DROPOUT))  # CPU and every CUDA device
    return {
        "shuffle": torch.Generator().manual_seed(stream_seed(seed, epoch, 0, SHUFFLE)),
        "attack": torch.Generator(device=device).manual_seed(stream_seed(seed, epoch, rank, ATTACK)),
        "augment": torch.Generator(device=device).manual_seed(stream_seed(seed, epoch, rank, AUGMENT)),
    }


class GlobalRng:
    """One run's own state of torch's global random generator (dropout masks), for sweeps.

    Dropout draws from the global generator, which :func:`epoch_generators` seeds when an epoch
    starts. Runs that take turns in one process would draw each other's masks; instead each run
    keeps its own state and swaps it in for its steps, so it draws exactly what it draws alone.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.cpu = torch.get_rng_state()
        self.cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.device)
        try:
            yield
        finally:
            self.cpu = torch.get_rng_state()
            if self.cuda is not None:
                self.cuda = torch.cuda.get_rng_state(self.device)
