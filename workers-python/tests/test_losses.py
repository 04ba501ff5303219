"""The losses against hand computations on fixed logits (plain Python math, not torch)."""

import math

import pytest
import torch
import torch.nn.functional as F

from makam_worker.training.losses import ClassificationLoss, balanced_weights, label_weight_vector

LOGITS = [[2.0, 0.0, -1.0], [0.5, 1.5, 0.0], [0.1, 0.2, 3.0], [1.0, 1.0, 1.0]]
LABELS = [0, 2, 2, 1]


def softmax(row):
    exps = [math.exp(x) for x in row]
    return [e / sum(exps) for e in exps]


def hand_cross_entropy(smoothing=0.0, weights=None):
    c = len(LOGITS[0])
    w = weights or [1.0] * c
    numerator = denominator = 0.0
    for row, y in zip(LOGITS, LABELS):
        logp = [math.log(p) for p in softmax(row)]
        numerator += (1 - smoothing) * w[y] * -logp[y] + smoothing / c * sum(w[k] * -logp[k] for k in range(c))
        denominator += w[y]
    return numerator / denominator


def hand_focal(gamma, alpha=None, smoothing=0.0):
    c = len(LOGITS[0])
    a = alpha or [1.0] * c
    total = 0.0
    for row, y in zip(LOGITS, LABELS):
        p = softmax(row)
        ce = (1 - smoothing) * -math.log(p[y]) + smoothing / c * sum(-math.log(q) for q in p)
        total += a[y] * (1 - p[y]) ** gamma * ce
    return total / len(LABELS)


def loss(**kwargs):
    return ClassificationLoss(3, **kwargs)(torch.tensor(LOGITS), torch.tensor(LABELS)).item()


def test_cross_entropy_is_the_mean_negative_log_likelihood():
    assert loss() == pytest.approx(hand_cross_entropy(), rel=1e-6)


@pytest.mark.parametrize("smoothing", [0.1, 0.3])
def test_label_smoothing_spreads_target_mass_as_its_formula_says(smoothing):
    assert loss(label_smoothing=smoothing) == pytest.approx(hand_cross_entropy(smoothing), rel=1e-6)
    assert loss(label_smoothing=smoothing) != pytest.approx(loss(), rel=1e-3)
    torch_value = F.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS), label_smoothing=smoothing).item()
    assert loss(label_smoothing=smoothing) == pytest.approx(torch_value, rel=1e-6)


def test_class_weights_weigh_examples_as_pytorch_does():
    w = [0.5, 2.0, 1.5]
    for smoothing in (0.0, 0.2):
        mine = loss(class_weights=torch.tensor(w), label_smoothing=smoothing)
        assert mine == pytest.approx(hand_cross_entropy(smoothing, w), rel=1e-6)
        torch_value = F.cross_entropy(torch.tensor(LOGITS), torch.tensor(LABELS), weight=torch.tensor(w),
                                      label_smoothing=smoothing).item()
        assert mine == pytest.approx(torch_value, rel=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0, 5.0])
def test_focal_loss_down_weights_easy_examples_as_its_formula_says(gamma):
    assert loss(kind="focal", focal_gamma=gamma) == pytest.approx(hand_focal(gamma), rel=1e-6)
    assert loss(kind="focal", focal_gamma=gamma) < loss()  # (1 - p)^gamma < 1 shrinks every term


def test_focal_alpha_weighs_each_class_and_gamma_0_is_cross_entropy():
    alpha = [0.25, 1.0, 2.0]
    got = loss(kind="focal", focal_gamma=2.0, focal_alpha=torch.tensor(alpha))
    assert got == pytest.approx(hand_focal(2.0, alpha), rel=1e-6)
    assert loss(kind="focal", focal_gamma=0.0) == pytest.approx(loss(), rel=1e-6)
    assert loss(kind="focal", focal_gamma=2.0, label_smoothing=0.1) == pytest.approx(hand_focal(2.0, None, 0.1), rel=1e-6)


def test_balanced_weights_are_n_over_labels_times_count():
    weights = balanced_weights([0, 0, 0, 1, 2, 2], 3)
    assert weights.tolist() == pytest.approx([6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2)])


def test_explicit_label_weights_default_to_1():
    assert label_weight_vector({"pop": 3.0}, ["arabesk", "pop", "rock"]).tolist() == [1.0, 3.0, 1.0]
    assert label_weight_vector(None, ["a", "b"]) is None
