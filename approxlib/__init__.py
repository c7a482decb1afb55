"""approxlib: approximate computing for CNNs — pruning, quantization, size, latency, sparsity.

One module per stage: config (profiles, validated dataclasses), data, models, train, prune,
quantize, measure, store (artifacts and cache), pipeline (the cached stage graph), cli.
"""
__version__ = "0.1.0"

import warnings

from tqdm import TqdmWarning

# tqdm.auto in a Jupyter kernel without ipywidgets advises installing them, in the first cell
# of every executed notebook; the notebooks run with progress off and the bars fall back to text
warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
