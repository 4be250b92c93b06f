#!/usr/bin/env bash
# Fashion-MNIST linear-probe study (issue 6): saves the fixed random ResNet-18, extracts its
# features once (timed), then runs the comparison from the cache. Resumable.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=benchmarks/results/fashion_mnist_probe
mkdir -p "$out"
if [ ! -f "$out/resnet18_random_seed0.pt" ]; then
  .venv/bin/python -c "
import torch, torchvision
torch.manual_seed(0)
net = torchvision.models.resnet18()
torch.save({k: v for k, v in net.state_dict().items() if not k.startswith('fc.')}, '$out/resnet18_random_seed0.pt')"
fi
start=$(date +%s)
.venv/bin/mr2 extract --config benchmarks/fashion_mnist/probe.toml | tee "$out/extract.txt"
echo "extract: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
start=$(date +%s)
.venv/bin/mr2 compare --config benchmarks/fashion_mnist/probe.toml --out "$out/compare"
echo "compare: $(( $(date +%s) - start )) s" | tee -a "$out/timings.txt"
