"""The agent's observation of a sample: what the acting copy and the learner both see.

Built in the training worker from the one training forward pass (features, loss, difficulty,
uncertainty) and the per-sample history each plan ships (`CONTEXT_COLUMNS`).
"""
from __future__ import annotations

import numpy as np
import torch

from raydata_agent.signals import p_given_label

CONTEXT_COLUMNS = ("agreement", "staleness", "seen")  # per-sample history the plan ships to workers
STATE_SCALARS = 7  # scalars appended to the normalised features in the "full" state


def obs_dim(feature_dim: int, state: str) -> int:
    return feature_dim + (STATE_SCALARS if state == "full" else 0)


def build_state(features, loss: np.ndarray, difficulty: np.ndarray, uncertainty: np.ndarray,
                context: np.ndarray, state: str, fit: np.ndarray | None = None) -> torch.Tensor:
    """The agent's observation of each sample in a batch, on the features' device (no copy to host).

    "features" (the paper): the pooled features as they come. "full": the features scaled to unit
    length (their scale drifts as the model trains) plus what greedy knows and more: difficulty,
    uncertainty, log(1 + loss), p(given label) now, its EMA over earlier visits (label agreement),
    epochs since the last visit (a fraction of the run), and whether the sample was seen before.
    p(given label) is the task's `fit` where given (boxes, masks), else exp(-loss) (signals.p_given_label).
    """
    features = torch.as_tensor(features).detach().float()
    if state == "features":
        return features
    loss = np.asarray(loss, np.float32)
    seen = context[:, 2] > 0
    p_label = p_given_label(loss, fit)
    scalars = np.stack([difficulty, uncertainty, np.log1p(loss), p_label,
                        np.where(seen, context[:, 0], p_label), context[:, 1], context[:, 2]], axis=1)
    unit = torch.nn.functional.normalize(features, dim=1, eps=1e-6)
    return torch.cat([unit, torch.from_numpy(scalars.astype(np.float32)).to(features.device)], dim=1)
