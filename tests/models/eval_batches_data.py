"""The eval set of tests/models/eval_batches.py, without TensorFlow, so that tests can compute exact metrics."""

import numpy as np

TRUE_W, TRUE_B = 3.0, 2.0  # launcher.models.linear's
BATCH_SIZES = (1, 2, 3, 4, 5)
EVAL_X = (np.linspace(-1.0, 1.0, sum(BATCH_SIZES), dtype=np.float32).reshape(-1, 1) ** 3 + 0.5).astype(np.float32)
EVAL_Y = (TRUE_W * EVAL_X + TRUE_B).astype(np.float32)


def batches():
    """(x, y) of each eval batch, in order."""
    start = 0
    for size in BATCH_SIZES:
        yield EVAL_X[start:start + size], EVAL_Y[start:start + size]
        start += size
