"""How `launcher scale` reaches the launcher of a running run: a request file next to the run's lock.

Only the lock's holder (`model_dir_lock`) acts on requests, so a run is changed through its own launcher and
nothing else: `send` first checks that some launcher holds `<model_dir>/.launcher.lock` (a shared flock that
cannot be had while the holder's exclusive one stands), writes `.scale-request.json` (a temporary file
renamed over it), and waits for `.scale-reply.json` with the same id. The supervisor's loop polls for the
request twice a second (`Channel.poll`), decides (`policies.scale`) and answers (`Channel.answer`).

Both files are data read from a model directory: size-capped, type-checked, never followed through a link
(`safe_files`). A request left by an earlier run is removed when a run starts, never acted on.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import time
import uuid
from typing import Callable, Optional

from launcher.cluster import safe_files
from launcher.cluster.errors import UserError
from launcher.launch import model_dir_lock

REQUEST = ".scale-request.json"
REPLY = ".scale-reply.json"
MAX_BYTES = 4096
ANSWER_SECS = 30.0


@dataclasses.dataclass(frozen=True)
class Request:
    id: str
    workers: int


def _read_json(path: str) -> Optional[dict]:
    """The object in `path`, None when the file is missing; ValueError when it is not a small JSON object."""
    try:
        with safe_files.open_read(path) as f:
            text = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"cannot read it ({type(e).__name__})") from None
    if len(text) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def run_holds(model_dir: str) -> bool:
    """Whether a launcher holds `model_dir` now (nothing is created when none does)."""
    try:
        with safe_files.open_read(os.path.join(model_dir, model_dir_lock.FILE_NAME)) as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False
    except OSError as e:
        if e.errno in (errno.ENOTDIR, errno.EACCES):
            return False
        raise


def send(model_dir: str, workers: int, answer_secs: float = ANSWER_SECS,
         sleep: Callable[[float], None] = time.sleep) -> str:
    """Ask the run holding `model_dir` for `workers` workers; its launcher's answer, or UserError."""
    if not os.path.isdir(model_dir):
        raise UserError(f"{model_dir!r}: not a directory; no run holds it")
    if not run_holds(model_dir):
        raise UserError(f"{model_dir!r}: no run holds this model directory (no launcher has its "
                        f"{model_dir_lock.FILE_NAME} locked)")
    request = Request(uuid.uuid4().hex, workers)
    reply_path = os.path.join(model_dir, REPLY)
    safe_files.write_replacing(os.path.join(model_dir, REQUEST), json.dumps(dataclasses.asdict(request)))
    waited = 0.0
    while waited < answer_secs:
        try:
            reply = _read_json(reply_path)
        except ValueError:
            reply = None  # being replaced: read it again
        if reply is not None and reply.get("id") == request.id:
            os.unlink(reply_path)
            message = reply.get("message")
            message = message if isinstance(message, str) else "(no message)"
            if reply.get("ok") is not True:
                raise UserError(f"refused: {message}")
            return message
        sleep(0.1)
        waited += 0.1
    try:
        os.unlink(os.path.join(model_dir, REQUEST))
    except FileNotFoundError:
        pass
    raise UserError(f"{model_dir!r}: the run's launcher did not answer within {answer_secs:.0f} s")


class Channel:
    """The supervisor's end: at most one request at a time, each answered once."""

    def __init__(self, model_dir: str):
        self._request = os.path.join(model_dir, REQUEST)
        self._reply = os.path.join(model_dir, REPLY)
        for stale in (self._request, self._reply):  # an earlier run's: never acted on
            safe_files.check_not_link(stale)
            try:
                os.unlink(stale)
            except FileNotFoundError:
                pass

    def poll(self) -> tuple[Optional[Request], Optional[str]]:
        """(a request, None), (None, why a request file was refused), or (None, None) when there is none."""
        try:
            data = _read_json(self._request)
        except ValueError as e:
            self._remove()
            return None, f"{REQUEST}: {e}"
        if data is None:
            return None, None
        self._remove()
        request_id, workers = data.get("id"), data.get("workers")
        if not isinstance(request_id, str) or not request_id.isalnum() or len(request_id) > 64:
            return None, f"{REQUEST}: no valid id"
        if not isinstance(workers, int) or isinstance(workers, bool):
            self.answer(Request(request_id, -1), False, f"--workers {workers!r}: not a whole number")
            return None, f"{REQUEST}: --workers is not a whole number"
        return Request(request_id, workers), None

    def answer(self, request: Request, ok: bool, message: str) -> None:
        try:
            safe_files.write_replacing(self._reply, json.dumps({"id": request.id, "ok": ok, "message": message}))
        except OSError:
            pass  # the asker times out and says so; the run goes on

    def _remove(self) -> None:
        try:
            os.unlink(self._request)
        except FileNotFoundError:
            pass


class NoChannel:
    """For a supervisor without a model directory of its own (tests): nothing ever asks."""

    def poll(self) -> tuple[Optional[Request], Optional[str]]:
        return None, None

    def answer(self, request: Request, ok: bool, message: str) -> None:
        pass
