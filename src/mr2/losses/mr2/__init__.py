"""MR² in one package. To learn how the loss computes, read three files:

- ``loss.py``: ``MR2Loss``, the module: its options, its forward (cross-entropy on logits
  divided by the true class's margin, plus the representation term) and its hooks;
- ``class_stats.py``: the running class statistics as count-weighted sums and the margin
  statistic a_k of gamma_k ∝ a_k^(1/3);
- ``terms.py``: the two terms and their analytic gradients (``MarginTerms``).

The rest: ``state.py`` (the statistics as module buffers, their EMA update across
processes, one training step's margins and s_bar), ``soft.py`` (soft targets:
mixup / cutmix), ``gradients.py`` (the representation / logit gradient ratio), ``options.py``
(option ranges), ``presets.py`` (the paper's and the authors' settings) and ``variants.py``
(the registered variants ``mr2_logit``, ``mr2_rep``, ``mr2_reversed``).
"""

from mr2.losses.mr2 import variants  # noqa: F401 (registers the variants)
from mr2.losses.mr2.loss import MR2Loss

__all__ = ["MR2Loss"]
