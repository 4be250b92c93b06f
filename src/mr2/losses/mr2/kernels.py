"""MR²'s statistics step as Triton kernels (see ``triton_step`` for what they compute and
when they run). Importing this module needs Triton."""

import triton
import triton.language as tl

from mr2.functional import MARGIN_FLOOR

FLOOR = tl.constexpr(MARGIN_FLOOR)
FLOAT32_MAX = tl.constexpr(3.4028234663852886e38)
TINY32 = tl.constexpr(1.1754943508222875e-38)


@triton.jit
def scatter(f_ptr, y_ptr, rows_ptr, onehot_ptr, D, K, stride_f, BD: tl.constexpr, BK: tl.constexpr):
    i = tl.program_id(0)
    k = tl.load(y_ptr + i)
    row = rows_ptr + k * (D + 2)
    sq = tl.zeros((BD,), dtype=tl.float64)
    for start in range(0, D, BD):
        d = start + tl.arange(0, BD)
        v = tl.load(f_ptr + i * stride_f + d, mask=d < D, other=0.0).to(tl.float64)
        sq += v * v
        tl.atomic_add(row + 2 + d, v, mask=d < D)
    tl.atomic_add(row + 1, tl.sum(sq, 0))
    tl.atomic_add(row, 1.0)
    for start in range(0, K, BK):
        c = start + tl.arange(0, BK)
        tl.store(onehot_ptr + i * K + c, tl.where(c == k, -1.0, 0.0), mask=c < K)


@triton.jit
def _total(sums_ptr, rows_ptr, K, C, decay, BK: tl.constexpr, BC: tl.constexpr):
    """Float64 total of the merged sums (not stored)."""
    acc = tl.zeros((BK, BC), dtype=tl.float64)
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)[:, None]
        present = tl.load(rows_ptr + ks * C, mask=ks < K, other=0.0) > 0
        factor = tl.where(present, decay, 1.0)
        for c0 in range(0, C, BC):
            cs = c0 + tl.arange(0, BC)[None, :]
            m = (ks < K) & (cs < C)
            old = tl.load(sums_ptr + ks * C + cs, mask=m, other=0.0)
            acc += old * factor + tl.load(rows_ptr + ks * C + cs, mask=m, other=0.0)
    return tl.sum(tl.sum(acc, 1), 0)


@triton.jit
def _commit(sums_ptr, rows_ptr, scratch_ptr, K, C, decay, ok, BK: tl.constexpr, BC: tl.constexpr):
    """Merge (if ``ok``) and store the sums, and write per class a_k (NaN if unseen) and
    s_k^2 to the scratch. Each element of the sums is read and written by the thread that
    owns it in the (BK, BC) tile, so the update needs no barrier."""
    for k0 in range(0, K, BK):
        kv = k0 + tl.arange(0, BK)
        ks = kv[:, None]
        present = tl.load(rows_ptr + ks * C, mask=ks < K, other=0.0) > 0
        factor = tl.where(ok, tl.where(present, decay, 1.0), 1.0)
        w = tl.zeros((BK,), dtype=tl.float64)
        wa = tl.zeros((BK,), dtype=tl.float64)
        mu_sq = tl.zeros((BK,), dtype=tl.float64)
        for c0 in range(0, C, BC):
            cs = c0 + tl.arange(0, BC)[None, :]
            m = (ks < K) & (cs < C)
            batch = tl.load(rows_ptr + ks * C + cs, mask=m, other=0.0)
            new = tl.load(sums_ptr + ks * C + cs, mask=m, other=0.0) * factor
            new += tl.where(ok, batch, 0.0)
            tl.store(sums_ptr + ks * C + cs, new, mask=m)
            w += tl.sum(tl.where(cs == 0, new, 0.0), 1)
            wa += tl.sum(tl.where(cs == 1, new, 0.0), 1)
            mu_sq += tl.sum(tl.where(cs >= 2, new * new, 0.0), 1)
        a = wa / w  # NaN for unseen classes (0 / 0)
        spread = tl.maximum(a - mu_sq / (w * w), 0.0)
        tl.store(scratch_ptr + kv, a, mask=kv < K)
        tl.store(scratch_ptr + K + kv, spread, mask=kv < K)


@triton.jit
def _clear(rows_ptr, K, C, BK: tl.constexpr, BC: tl.constexpr):
    """Zero the batch rows for the next step (after every read of them: a barrier first)."""
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)[:, None]
        for c0 in range(0, C, BC):
            cs = c0 + tl.arange(0, BC)[None, :]
            zeros = tl.zeros((BK, BC), dtype=tl.float64)
            tl.store(rows_ptr + ks * C + cs, zeros, mask=(ks < K) & (cs < C))


@triton.jit
def finish(
    sums_ptr, rows_ptr, y_ptr, inv_ptr, s_bar_ptr, scale_ptr, scratch_ptr,
    K, D, B, decay, c_bar, temperature,
    AUTO: tl.constexpr, BK: tl.constexpr, BC: tl.constexpr, BB: tl.constexpr,
):  # fmt: skip
    C = D + 2
    total = _total(sums_ptr, rows_ptr, K, C, decay, BK, BC)
    ok = tl.abs(total) <= FLOAT32_MAX  # NaN fails too
    tl.debug_barrier()
    _commit(sums_ptr, rows_ptr, scratch_ptr, K, C, decay, ok, BK, BC)
    tl.debug_barrier()  # the scratch and the rows are read no more by other threads
    _clear(rows_ptr, K, C, BK, BC)
    count = tl.zeros((BK,), dtype=tl.float32)
    roots = tl.zeros((BK,), dtype=tl.float32)
    spreads = tl.zeros((BK,), dtype=tl.float64)
    for k0 in range(0, K, BK):
        kv = k0 + tl.arange(0, BK)
        a = tl.load(scratch_ptr + kv, mask=kv < K, other=float("nan"))
        seen = a == a
        root = tl.exp(tl.log(tl.maximum(a.to(tl.float32), TINY32)) / 3.0)
        count += tl.where(seen, 1.0, 0.0)
        roots += tl.where(seen, root, 0.0)
        spreads += tl.where(seen, tl.load(scratch_ptr + K + kv, mask=kv < K, other=0.0), 0.0)
    n = tl.maximum(tl.sum(count, 0), 1.0)
    floor = tl.sum(roots, 0) / n * FLOOR
    floored_sum = tl.zeros((BK,), dtype=tl.float32)
    for k0 in range(0, K, BK):
        kv = k0 + tl.arange(0, BK)
        a = tl.load(scratch_ptr + kv, mask=kv < K, other=float("nan"))
        root = tl.maximum(tl.exp(tl.log(tl.maximum(a.to(tl.float32), TINY32)) / 3.0), floor)
        floored = tl.where(a == a, root, 0.0)
        floored_sum += floored
        tl.store(scratch_ptr + 2 * K + kv, floored.to(tl.float64), mask=kv < K)
    norm = tl.sum(floored_sum, 0) / n / c_bar  # gamma_k = floored_k / norm
    tl.debug_barrier()
    for b0 in range(0, B, BB):
        bs = b0 + tl.arange(0, BB)
        ys = tl.load(y_ptr + bs, mask=bs < B, other=0)
        floored = tl.load(scratch_ptr + 2 * K + ys, mask=bs < B, other=1.0).to(tl.float32)
        inv = tl.where(floored > 0, norm / floored, 1.0 / c_bar)
        tl.store(inv_ptr + bs, inv, mask=bs < B)
    s_bar = tl.sum(spreads, 0) / n
    tl.store(s_bar_ptr, s_bar)
    if AUTO:
        tl.store(scale_ptr, tl.where(s_bar > 0, 2.0 * s_bar, 1.0))
    else:
        tl.store(scale_ptr, temperature)
