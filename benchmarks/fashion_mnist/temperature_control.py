"""Is the logit-margin ablation's hard-class gain a class-specific effect or a global
temperature? Compares, paired by seed, CE at T = 0.5 and MR² logit-only (c_bar 0.5) with ERM.

    python benchmarks/fashion_mnist/temperature_control.py [RESULTS_DIR]
"""

import sys
from pathlib import Path

import numpy as np

from mr2.metrics import paired_comparison
from mr2.report.results import collect

root = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results/fashion_mnist")


def per_class(path: Path) -> np.ndarray:
    runs = sorted(collect([path]), key=lambda r: r["seed"])
    return np.array([r["test"]["per_class"] for r in runs])


erm = per_class(root / "mlp" / "ce")
reference = erm.mean(0)
for name, path in [
    ("ce T=0.5", root / "mlp_temperature" / "ce"),
    ("mr2_logit c_bar=0.5", root / "mlp" / "mr2_logit"),
]:
    acc = per_class(path)
    cmp = paired_comparison(acc, erm, reference=reference)
    print(
        f"{name:22s} overall {100 * acc.mean():.2f} hard gain {100 * cmp.group_gain['hard']:+.2f} "
        f"(per seed {', '.join(f'{100 * g:+.2f}' for g in cmp.hard_gain_per_seed)}; "
        f"SE {100 * cmp.hard_gain_se:.2f}; p seeds {cmp.p_seeds:.4f})"
    )
direct = paired_comparison(
    per_class(root / "mlp" / "mr2_logit"),
    per_class(root / "mlp_temperature" / "ce"),
    reference=reference,
)
print(
    f"mr2_logit vs ce T=0.5: hard gain {100 * direct.group_gain['hard']:+.2f} "
    f"(SE {100 * direct.hard_gain_se:.2f}, p seeds {direct.p_seeds:.4f})"
)
