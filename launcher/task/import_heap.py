"""The objects that importing TensorFlow makes, kept out of the cyclic garbage collector's way.

Importing TensorFlow, the task program and a model makes about 280 000 objects that live as long as the
process: modules, classes, functions, op definitions. Python's cyclic collector walks all of them in each
full collection: five times during the import (0.5-0.8 s of CPU on two loaded cores, measured with
`gc.callbacks`), then once more while a task builds its first graph (0.15-0.3 s). In a process forked
from the warm process a collection also writes to every object's header, so each task would copy the
pages it could have shared with its warm process.

So the collector is paused while the imports run, and once they are done every object made so far is
frozen (`gc.freeze`: moved to a generation that is never collected) and the collector resumes for what
the task makes from then on. What the imports leave as cyclic garbage is little (about 1 500 objects,
measured) and is kept for the process's life. Python's documentation of `gc.freeze` gives this sequence
for processes that fork without exec (the collector off in the parent, a freeze right before each fork,
the collector on in the child); the warm process also turns it back on for what its loop makes, which
never touches the frozen objects.
"""

import gc


def pause() -> None:
    """Before the imports: no collection while they run."""
    gc.disable()


def freeze() -> None:
    """What exists now is never collected (the warm process also calls it right before each fork)."""
    gc.freeze()


def imports_done() -> None:
    """After the imports: what they made is frozen, and the collector runs again over what comes next."""
    freeze()
    gc.enable()
