"""The eval set of tests/models/eval_batches.py, without TensorFlow, so that tests can compute exact metrics.

Its labels follow y = 1.5 x + 1, not the training data's 3 x + 2: as w and b travel from 0 to (3, 2) they pass
by the eval set's line, so the eval mse falls, then rises again (as it does when a model over-fits), and the
best checkpoint is one in the middle of training.
"""

import numpy as np

EVAL_W, EVAL_B = 1.5, 1.0
BATCH_SIZES = (1, 2, 3, 4, 5)
EVAL_X = (np.linspace(-1.0, 1.0, sum(BATCH_SIZES), dtype=np.float32).reshape(-1, 1) ** 3 + 0.5).astype(np.float32)
EVAL_Y = (EVAL_W * EVAL_X + EVAL_B).astype(np.float32)


def batches():
    """(x, y) of each eval batch, in order."""
    start = 0
    for size in BATCH_SIZES:
        yield EVAL_X[start:start + size], EVAL_Y[start:start + size]
        start += size
