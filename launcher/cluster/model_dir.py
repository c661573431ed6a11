"""What a model directory may be: a path on this machine's filesystem, or a URL that only tasks can use.

The launcher keeps its own files there (run.json, logs/, the one-run lock) with plain file calls and an
flock, which no object store offers; the tasks write checkpoints through TensorFlow's filesystem layer,
which reads URLs. So `launcher run` needs a path (a mount, such as NFS, works on every host), while an
exported manifest may name a URL for its tasks. A URL must never be taken for a relative path: that
would create a local directory named `gs:`.
"""

from __future__ import annotations

import re
from typing import Optional

from launcher.cluster.errors import UserError

# URL schemes of TensorFlow's filesystem layer: gs:// is built in; s3:// and hdfs:// need tensorflow-io.
TASK_URL_SCHEMES = ("gs", "s3", "hdfs")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(model_dir: str) -> Optional[str]:
    """The scheme of `model_dir` if it is a URL ("gs" for gs://bucket/run), else None."""
    match = _SCHEME.match(model_dir)
    return match.group(1).lower() if match else None


def check_for_run(model_dir: str) -> None:
    """`launcher run` keeps its own files in the model directory: a URL cannot hold them."""
    scheme = url_scheme(model_dir)
    if scheme is not None:
        raise UserError(f"--model_dir {model_dir!r}: `launcher run` needs a path on this machine (a mounted "
                        f"shared filesystem such as NFS or gcsfuse will do), not a {scheme}:// URL; "
                        f"`launcher export` takes {', '.join(s + '://' for s in TASK_URL_SCHEMES)} model directories")


def check_for_tasks(model_dir: str) -> None:
    """A URL handed to exported tasks must be one that TensorFlow's filesystem layer reads."""
    scheme = url_scheme(model_dir)
    if scheme is not None and scheme not in TASK_URL_SCHEMES:
        raise UserError(f"--model_dir {model_dir!r}: {scheme}:// is not a filesystem that the tasks read; "
                        f"expected a path or one of {', '.join(s + '://' for s in TASK_URL_SCHEMES)}")
