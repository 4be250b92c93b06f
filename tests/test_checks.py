"""mr2._checks.check_values: the label range and finiteness, decided from sums."""

import pytest
import torch

from mr2 import _checks


def test_finite_inputs_pass_even_when_their_sum_overflows():
    """3e38 * 4 overflows float32 (and 6e4 * 4 float16): a sum alone would raise falsely."""
    y = torch.tensor([0, 1, 2, 1])
    _checks.check_values(y, 3, big=torch.full((4, 2), 3e38))
    _checks.check_values(y, 3, half=torch.full((4, 2), 6e4, dtype=torch.float16))
    _checks.check_values(y, 3, mixed=torch.tensor([3e38, -3e38, 3e38, 1.0]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_each_named_tensor_is_checked(bad, dtype):
    y = torch.tensor([0, 1, 2])
    ok = torch.ones(3, 2, dtype=dtype)
    broken = ok.clone()
    broken[2, 1] = bad
    _checks.check_values(y, 3, first=ok, second=ok)
    with pytest.raises(ValueError, match="second contains NaN or Inf"):
        _checks.check_values(y, 3, first=ok, second=broken)
    with pytest.raises(ValueError, match="first contains NaN or Inf"):
        _checks.check_values(y, 3, first=broken, second=ok)
    # +inf and -inf cancel to NaN in a sum, never to a finite number
    both = torch.tensor([float("inf"), -float("inf")], dtype=dtype)
    with pytest.raises(ValueError, match="x contains NaN or Inf"):
        _checks.check_values(y, 3, x=both)


@pytest.mark.parametrize(
    ("labels", "message"),
    [([0, 3, 1], r"\[0, 3\), got values in \[0, 3\]"), ([-1, 2], r"got values in \[-1, 2\]")],
)
def test_label_range(labels, message):
    with pytest.raises(ValueError, match=message):
        _checks.check_values(torch.tensor(labels), 3)
    _checks.check_values(torch.tensor([0, 2, 1]), 3)
    _checks.check_values(torch.tensor([], dtype=torch.long), 3)  # nothing to check
