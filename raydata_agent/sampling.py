"""How a loop the user owns reads the session's selection with torch: each rank's share of an epoch
(`shard`), a Sampler that plans each epoch, and a Dataset wrapper that hands out each item's pool id."""
from __future__ import annotations

import numpy as np
import torch


def shard(ids: np.ndarray, weights: np.ndarray, rank: int, world: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffle the epoch's subset the same way on every worker and give each an equal share.

    Shares are padded to equal length (as DistributedSampler does) so DDP workers take the same
    number of steps and never wait on each other's all-reduce.
    """
    order = np.random.default_rng(seed).permutation(len(ids))
    pad = (-len(order)) % world
    order = np.concatenate([order, order[:pad]])[rank::world]
    return ids[order], weights[order]


def rank_and_world() -> tuple[int, int]:
    """This process's place in torch.distributed (set up by Ray Train, torchrun or mmengine), else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class SelectedSampler(torch.utils.data.Sampler):
    """Yields the session's selected ids for each epoch: this rank's share under DDP.

    Each `iter()` (a DataLoader does one per epoch) plans the next epoch, or the one named by
    `set_epoch` (DistributedSampler's protocol, which mmengine and Ray Train loops already call).
    `session`: a SelectionSession (session.py).
    """

    def __init__(self, session, shuffle: bool = True):
        self.session = session
        self.shuffle = shuffle
        self._epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self._epoch = epoch

    def __iter__(self):
        ids, _ = self.session.plan_epoch(self._epoch)
        self._epoch = None
        return iter((ids if self.shuffle else np.sort(ids)).tolist())

    def __len__(self) -> int:
        if self.session.epoch is None:  # asked before the epoch is planned (a progress bar): plan it now
            self.session.plan_epoch(self._epoch)
        return len(self.session.ids)


class WithIds(torch.utils.data.Dataset):
    """Wraps a map-style dataset so each item comes with its index: `(id, item)`.

    The id is the pool row: it is what `record` needs to attribute a loss to its sample.
    """

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        return index, self.dataset[index]
