"""`python -m launcher.task.warm --socket=PATH --model=MODULE`: import once, then fork tasks on request.

Started by a launcher for one run, on one machine (in the run's network namespace when it has one); see
`launcher.cluster.warm_protocol`. Never started by hand: a task started any other way runs cold.
"""

import argparse
import os

import launcher.task  # noqa: F401  (sets the task environment before TensorFlow's import)
from launcher.cluster.errors import UserError

parser = argparse.ArgumentParser(prog="python -m launcher.task.warm")
parser.add_argument("--socket", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

from launcher.task.warm import fork_server  # noqa: E402

try:
    fork_server.private_directory(os.path.dirname(args.socket))
except OSError as e:
    raise SystemExit(f"error: the warm process's socket directory: {e}") from None

from launcher.task import import_heap  # noqa: E402

import_heap.pause()  # until every import is done (see `import_heap`)
import tensorflow  # noqa: E402,F401

from launcher.task.warm import child, fork_safety, server  # noqa: E402

# Counted after TensorFlow's import and before anything else: what the model module starts is not safe.
baseline_threads = fork_safety.os_threads()

from launcher import model_api  # noqa: E402
from launcher.task import program  # noqa: E402,F401

model_error = None
try:
    model_api.load(args.model)  # defines the model's flags once; every task parses them afresh
except UserError as e:
    model_error = str(e)  # said by every task, as a cold one would: a re-import could say something else

import_heap.imports_done()  # what the tasks share with this process: their collections never touch it
request = server.Server(args.socket, baseline_threads, model_error, program.PARENT_GRACE_SECS).serve()
child.become(request)  # only a forked child gets here
