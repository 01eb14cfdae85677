"""Benchmarks and the shared fault-injection scenarios; run each as a module from the repository root,
e.g. `python -m benchmarks.bench_io`."""
