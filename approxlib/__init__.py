"""approxlib: approximate computing for CNNs — pruning, quantization, size, latency, sparsity.

One module per stage: config (profiles, validated dataclasses), data, models, train, prune,
quantize, measure, store (artifacts and cache), pipeline (the cached stage graph), cli.
"""
__version__ = "0.1.0"
