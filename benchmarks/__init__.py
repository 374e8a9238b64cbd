"""Benchmarks of fashion_tuner: accuracy under budget, peers at an equal budget, overhead, scale,
memory and determinism. Run them with ``python -m benchmarks.run --suite quick|full`` (see README.md)."""
