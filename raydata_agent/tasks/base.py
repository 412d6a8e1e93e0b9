"""`TaskOutput`: what every task's `forward` returns, so selection needs no extra inference pass.

It sits below the task modules and the package that picks among them (`build_task`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TaskOutput:
    loss: torch.Tensor  # [B] per-sample loss, with grad
    probs: torch.Tensor | None  # [B, C] predictive distribution, or None if the task has none
    features: torch.Tensor  # [B, d] detached pooled features: the agent's state
    uncertainty: torch.Tensor | None = None  # [B] in [0, 1] where the task computes its own (segmentation)
    # [B] norm of each sample's loss gradient w.r.t. the output layer, where the task has it for free
    # (classification); LEAD's predicted loss change uses it. None: that term is 0.
    grad_norm: torch.Tensor | None = None
    # [B] detached, in [0, 1]: the probability the model gives the sample's own annotation, where the
    # loss is not -log of it (a detection image's boxes, a segmentation image's pixels). The agent's
    # p(given label) and label agreement use it (signals.p_given_label). None: exp(-loss), which is
    # p(given label) exactly for cross-entropy (classification).
    fit: torch.Tensor | None = None
