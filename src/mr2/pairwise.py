"""Pairwise squared Euclidean distances with a backward that uses the symmetry of the Gram.

``d_ij = ||f_i||^2 + ||f_j||^2 - 2 f_i . f_j`` for a (B, D) batch costs one B x B x D
product forward. Plain autograd through ``f @ f.T`` would spend two more in backward
(one per operand); since the incoming gradient only matters through ``S = G + G^T``,

    dL/df = 2 * (diag(S 1) f - S f)

needs a single product. Memory is O(B^2 + B*D); no (B, B, D) tensor is formed.
"""

from __future__ import annotations

import torch
from torch import Tensor


class _SquaredDistances(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(f)
        sq = f.square().sum(dim=1)  # (B,)
        # addmm fuses the -2 f f^T into the broadcast sum: one pass over (B, B).
        return torch.addmm(sq.unsqueeze(1) + sq.unsqueeze(0), f, f.t(), alpha=-2.0).clamp_(min=0)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (f,) = ctx.saved_tensors
        s = grad + grad.t()  # (B, B)
        return 2.0 * (s.sum(dim=1, keepdim=True) * f - s @ f)


def squared_distances(a: Tensor, b: Tensor | None = None) -> Tensor:
    """Squared 2-norm distances between rows: (B, D) -> (B, B), or (A, D), (C, D) -> (A, C).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
        >>> squared_distances(x)
        tensor([[ 0., 25.],
                [25.,  0.]])
    """
    if b is None:
        return _SquaredDistances.apply(a)
    sq_a, sq_b = a.square().sum(dim=1), b.square().sum(dim=1)
    return torch.addmm(sq_a.unsqueeze(1) + sq_b.unsqueeze(0), a, b.t(), alpha=-2.0).clamp(min=0)
