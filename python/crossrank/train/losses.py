"""Training losses over groups of scores ``[n_groups, width]`` with a validity mask.

* ``listwise``: softmax cross-entropy of the group (the positive against its negatives);
* ``bce``: pointwise binary cross-entropy on the logits;
* ``kl``: distillation, KL(teacher softmax || student softmax) over the documents the teacher scored;
* ``margin-mse``: distillation, mean squared error of (positive - negative) margins, student vs teacher.

:func:`training_loss` mixes a label loss into a distillation loss (``label_weight``).

Each is a plain formula; the tests check them against written-out references.
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = ["LOSSES", "LossName", "compute_loss", "training_loss"]

LossName = Literal["listwise", "bce", "kl", "margin-mse"]
LOSSES = ("listwise", "bce", "kl", "margin-mse")


def _masked_log_softmax(torch: Any, scores: Any, mask: Any) -> Any:
    neg_inf = torch.finfo(scores.dtype).min
    return torch.log_softmax(scores.masked_fill(~mask, neg_inf), dim=-1)


def listwise_loss(scores: Any, labels: Any, mask: Any) -> Any:
    """Mean over groups of ``-sum_j y_j / sum(y) * log softmax(scores)_j`` (valid slots only).

    Parameters
    ----------
    scores : torch.Tensor
        float [n_groups, width].
    labels : torch.Tensor
        float [n_groups, width], at least one positive per group.
    mask : torch.Tensor
        bool [n_groups, width].
    """
    import torch

    logp = _masked_log_softmax(torch, scores, mask)
    y = labels * mask
    target = y / y.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    return -(target * logp.masked_fill(~mask, 0.0)).sum(dim=-1).mean()


def bce_loss(scores: Any, labels: Any, mask: Any) -> Any:
    """Mean binary cross-entropy with logits over the valid slots.

    Parameters
    ----------
    scores, labels : torch.Tensor
        float [n_groups, width].
    mask : torch.Tensor
        bool [n_groups, width].
    """
    import torch

    return torch.nn.functional.binary_cross_entropy_with_logits(scores[mask], labels[mask])


def kl_loss(scores: Any, teacher: Any, mask: Any, temperature: float = 1.0) -> Any:
    """Mean over groups of ``KL(softmax(teacher / T) || softmax(scores / T))`` on the teacher-scored slots.

    Groups with fewer than two scored slots carry no ranking signal and are left out.

    Parameters
    ----------
    scores, teacher : torch.Tensor
        float [n_groups, width]; teacher NaN where it has no score.
    mask : torch.Tensor
        bool [n_groups, width].
    temperature : float
        Softmax temperature of both distributions.
    """
    import torch

    valid = mask & torch.isfinite(teacher)
    keep = valid.sum(dim=-1) >= 2
    if not bool(keep.any()):
        return scores.sum() * 0.0
    s, t, v = scores[keep] / temperature, teacher[keep].nan_to_num(0.0) / temperature, valid[keep]
    log_ps = _masked_log_softmax(torch, s, v)
    log_pt = _masked_log_softmax(torch, t, v)
    pt = log_pt.exp() * v
    return (pt * (log_pt - log_ps).masked_fill(~v, 0.0)).sum(dim=-1).mean()


def margin_mse_loss(scores: Any, teacher: Any, mask: Any) -> Any:
    """Mean over (group, negative j) of ``((s_0 - s_j) - (t_0 - t_j))^2``, slot 0 being the positive.

    Only slots the teacher scored count, and only groups whose positive it scored.

    Parameters
    ----------
    scores, teacher : torch.Tensor
        float [n_groups, width]; teacher NaN where it has no score.
    mask : torch.Tensor
        bool [n_groups, width].
    """
    import torch

    valid = mask & torch.isfinite(teacher)
    pair = valid & valid[:, :1]
    pair[:, 0] = False
    if not bool(pair.any()):
        return scores.sum() * 0.0
    t = teacher.nan_to_num(0.0)
    diff = (scores[:, :1] - scores) - (t[:, :1] - t)
    return (diff[pair] ** 2).mean()


def compute_loss(name: LossName | str, scores: Any, labels: Any, teacher: Any, mask: Any) -> Any:
    """Dispatch by loss name (see the module docstring).

    Parameters
    ----------
    name : {"listwise", "bce", "kl", "margin-mse"}
        The loss.
    scores, labels, teacher : torch.Tensor
        float [n_groups, width].
    mask : torch.Tensor
        bool [n_groups, width].
    """
    if name == "listwise":
        return listwise_loss(scores, labels, mask)
    if name == "bce":
        return bce_loss(scores, labels, mask)
    if name == "kl":
        return kl_loss(scores, teacher, mask)
    if name == "margin-mse":
        return margin_mse_loss(scores, teacher, mask)
    raise ValueError(f"loss must be one of {', '.join(LOSSES)}; got {name!r}")


def training_loss(
    name: LossName | str,
    scores: Any,
    labels: Any,
    teacher: Any,
    mask: Any,
    label_loss: LossName | str = "listwise",
    label_weight: float = 0.0,
) -> Any:
    """``(1 - w) * name + w * label_loss``: a distillation loss with the labels' loss mixed in.

    With ``label_weight`` 0 this is ``compute_loss(name, ...)`` itself (no second loss is computed).

    Parameters
    ----------
    name : {"listwise", "bce", "kl", "margin-mse"}
        The main loss (the distillation loss when a teacher is given).
    scores, labels, teacher : torch.Tensor
        float [n_groups, width].
    mask : torch.Tensor
        bool [n_groups, width].
    label_loss : {"listwise", "bce"}
        The loss on the judged labels.
    label_weight : float
        ``w`` in [0, 1].
    """
    main = compute_loss(name, scores, labels, teacher, mask)
    if label_weight == 0:
        return main
    hard = compute_loss(label_loss, scores, labels, teacher, mask)
    return (1.0 - label_weight) * main + label_weight * hard
