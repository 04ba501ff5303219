"""The training losses, as per-example terms so that gradient accumulation can normalise over a
whole optimizer step.

For a batch, loss = sum(numerator_i) / sum(denominator_i), with p = softmax(logits), C labels,
smoothing e, class weights w (all 1 when unset) and focal alpha a (all 1 when unset):

- cross_entropy (PyTorch's CrossEntropyLoss(weight=w, label_smoothing=e), exactly):
  numerator_i = (1 - e) * w[y_i] * -log p[i, y_i] + (e / C) * sum_c w[c] * -log p[i, c];  denominator_i = w[y_i]
- focal (Lin et al. 2017, with the smoothed cross-entropy as its CE term):
  ce_i = (1 - e) * -log p[i, y_i] + (e / C) * sum_c -log p[i, c]
  numerator_i = a[y_i] * w[y_i] * (1 - p[i, y_i]) ** gamma * ce_i;  denominator_i = 1
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F


class ClassificationLoss:
    def __init__(
        self,
        num_labels: int,
        *,
        kind: str = "cross_entropy",
        label_smoothing: float = 0.0,
        focal_gamma: float = 2.0,
        focal_alpha: torch.Tensor | None = None,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        if kind not in ("cross_entropy", "focal"):
            raise ValueError(f"unknown loss {kind!r}")
        self.num_labels = num_labels
        self.kind = kind
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma
        self.focal_alpha = focal_alpha
        self.class_weights = class_weights

    def terms(self, logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-example numerators and denominators (see the module docstring)."""
        logp = F.log_softmax(logits.float(), dim=-1)
        nll = -logp.gather(1, labels.unsqueeze(1)).squeeze(1)
        e, c = self.label_smoothing, self.num_labels
        w = self.class_weights.to(logits.device) if self.class_weights is not None else None
        if self.kind == "cross_entropy":
            if w is None:
                numerator = (1 - e) * nll + (e / c) * -logp.sum(dim=-1) if e else nll
                return numerator, torch.ones_like(nll)
            wy = w[labels]
            numerator = (1 - e) * wy * nll
            if e:
                numerator = numerator + (e / c) * -(logp * w).sum(dim=-1)
            return numerator, wy
        ce = (1 - e) * nll + (e / c) * -logp.sum(dim=-1) if e else nll
        pt = torch.exp(-nll)
        numerator = (1 - pt).pow(self.focal_gamma) * ce
        if self.focal_alpha is not None:
            numerator = numerator * self.focal_alpha.to(logits.device)[labels]
        if w is not None:
            numerator = numerator * w[labels]
        return numerator, torch.ones_like(nll)

    def __call__(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        numerator, denominator = self.terms(logits, labels)
        return numerator.sum() / denominator.sum()

    def denominator(self, labels: torch.Tensor) -> torch.Tensor:
        """sum(denominator_i) of a batch from its labels alone: what a whole optimizer step divides by."""
        if self.kind == "cross_entropy" and self.class_weights is not None:
            return self.class_weights[labels.cpu()].sum()
        return torch.tensor(float(labels.numel()))


def label_weight_vector(weights: dict[str, float] | None, label_names: list[str]) -> torch.Tensor | None:
    """{label: weight} as a vector in label id order; labels left out weigh 1."""
    if weights is None:
        return None
    return torch.tensor([float(weights.get(name, 1.0)) for name in label_names])


def balanced_weights(train_labels: list[int], num_labels: int) -> torch.Tensor:
    """scikit-learn's "balanced": n_examples / (n_labels * count[label])."""
    counts = Counter(train_labels)
    n = len(train_labels)
    return torch.tensor([n / (num_labels * counts[i]) if counts[i] else 1.0 for i in range(num_labels)])
