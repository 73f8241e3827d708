"""Loss functions of the scene tokenizer, as plain functions.

* ``occupancy_bce``: binary cross-entropy of the coarse-to-fine occupancy heads
  (as in the generative sparse decoders of Choy et al., "4D Spatio-Temporal ConvNets",
  CVPR 2019, and of SCPNet / "Sparse Single Sweep LiDAR Point Cloud Segmentation").
* ``lovasz_softmax`` / ``lovasz_softmax_flat`` / ``lovasz_grad``: the Lovász-softmax
  loss, a convex surrogate of the mean Jaccard loss (Berman, Triki and Blaschko,
  "The Lovász-Softmax loss", CVPR 2018), ported from the authors' reference code
  ``bermanmaxim/LovaszSoftmax`` (``pytorch/lovasz_losses.py``), MIT licence.
* ``kl_standard_normal``: KL divergence of a diagonal Gaussian to N(0, I)
  (Kingma and Welling, "Auto-Encoding Variational Bayes", ICLR 2014, Appendix B).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def occupancy_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of occupancy logits.

    Args:
        logits: ``(M,) float32`` logits that a (coarse) voxel holds any non-free voxel.
        target: ``(M,) bool`` or float, 1 where it does.

    Returns:
        Scalar ``float32``; 0 (with a graph) when ``M == 0``.
    """
    if logits.numel() == 0:
        return logits.sum() * 0.
    return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))


def lovasz_grad(gt_sorted: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. sorted errors
    (Berman et al. 2018, Alg. 1; reference ``lovasz_grad``).

    Args:
        gt_sorted: ``(P,) float32`` 0/1 ground truth, sorted by decreasing error.

    Returns:
        ``(P,) float32``.
    """
    p = len(gt_sorted)
    gts = gt_sorted.sum()
    intersection = gts - gt_sorted.cumsum(0)
    union = gts + (1. - gt_sorted).cumsum(0)
    jaccard = 1. - intersection / union
    if p > 1:  # cover 1-pixel case
        jaccard[1:p] = jaccard[1:p] - jaccard[0:-1]
    return jaccard


def lovasz_softmax_flat(probas: torch.Tensor, labels: torch.Tensor,
                        classes: str = 'present') -> torch.Tensor:
    """Multi-class Lovász-softmax loss (Berman et al. 2018, Eq. 12; reference
    ``lovasz_softmax_flat``).

    Args:
        probas: ``(P, C) float32`` class probabilities (softmax output).
        labels: ``(P,) int64`` ground-truth labels in ``0..C-1``.
        classes: ``'present'`` averages over the classes present in ``labels``,
            ``'all'`` over all ``C`` classes.

    Returns:
        Scalar ``float32``; 0 (with a graph) when ``P == 0``.
    """
    if probas.numel() == 0:
        return probas.sum() * 0.
    num_classes = probas.size(1)
    losses = []
    for c in range(num_classes):
        fg = (labels == c).float()  # (P,) foreground for class c
        if classes == 'present' and fg.sum() == 0:
            continue
        errors = (fg - probas[:, c]).abs()  # (P,)
        errors_sorted, perm = torch.sort(errors, 0, descending=True)
        fg_sorted = fg[perm]
        losses.append(torch.dot(errors_sorted, lovasz_grad(fg_sorted)))
    if not losses:
        return probas.sum() * 0.
    return torch.stack(losses).mean()


def lovasz_softmax(logits: torch.Tensor, labels: torch.Tensor,
                   classes: str = 'present') -> torch.Tensor:
    """Lovász-softmax of logits: ``lovasz_softmax_flat(softmax(logits), labels)``.

    Args:
        logits: ``(P, C) float32``.
        labels: ``(P,) int64`` in ``0..C-1``.
    """
    return lovasz_softmax_flat(logits.softmax(dim=1), labels, classes)


def kl_standard_normal(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` averaged over all latent elements
    (Kingma and Welling 2014, Appendix B: ``-0.5 * (1 + logvar - mu^2 - exp(logvar))``).

    Args:
        mu, logvar: ``(N, C, H, W) float32``.

    Returns:
        Scalar ``float32`` (nats per latent element).
    """
    return 0.5 * torch.mean(mu.pow(2) + logvar.exp() - 1. - logvar)
