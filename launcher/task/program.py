"""The task program: one process of the cluster, started as `python -m launcher.task`.

Its cluster and identity come from TF_CONFIG alone, so the same program runs under this launcher, under
Kubeflow's operator, or by hand. Exit codes follow `exit_codes`: bad input 2 (not worth a restart), an
exception in training 1, stopped by a signal 128 + the signal.
"""

from __future__ import annotations

import os
import sys
from typing import Optional, Sequence

import tensorflow as tf
from absl import app, flags, logging

from launcher import model_api
from launcher.cluster import exit_codes, tf_config
from launcher.cluster.model_dir import url_scheme
from launcher.cluster.errors import UserError
from launcher.cluster.spec import CHIEF, EVALUATOR, PS
from launcher.cluster.stop_signals import StopRequest
from launcher.task import evaluation, failure_report, flag_check, hooks, import_heap, launch_gate, ps_release
from launcher.task import serving_export, tcp_keepalive, training
from launcher.task import sync_replicas
from launcher.task import flags as task_flags
from launcher.task import bounded_call, parent_watch
from launcher.task import membership as membership_lib
from launcher.task.membership import Membership
from launcher.task.recovery import RecoveryDeadlineExceeded

FLAGS = flags.FLAGS
PARENT_GRACE_SECS = 30.0


def _fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(exit_codes.BAD_INPUT)


def _peek_model(argv: Sequence[str]) -> str:
    """--model, read before flag parsing: the model module must define its own flags first."""
    for i, arg in enumerate(argv):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1]
        if arg == "--model" and i + 1 < len(argv):
            return argv[i + 1]
    return task_flags.MODEL.default


def _parse_flags(argv: list[str]) -> list[str]:
    try:
        flag_check.check_role_flags(argv)
        rest = FLAGS(argv)
    except UserError as e:
        _fail(str(e))
    except flags.Error as e:
        _fail(str(e))
    if len(rest) > 1:
        _fail(f"unexpected arguments {rest[1:]} (flags are --name=value)")
    return rest


def main(argv: list[str], stop: StopRequest) -> Optional[int]:
    try:
        return _main(stop)
    except Exception as e:
        failure_report.report(e)  # then the traceback and exit 1, as before: the log keeps the whole story
        raise


def _main(stop: StopRequest) -> Optional[int]:
    try:
        task, cluster = tf_config.identity(os.environ)
        if task_flags.MODEL_DIR.value is None:
            raise UserError("--model_dir is required")
        model_dir = task_flags.MODEL_DIR.value
        own_log = None if url_scheme(model_dir) else parent_watch.log_path(model_dir, task.job, task.index)
        parent_watch.watch_parent(PARENT_GRACE_SECS, own_log, str(task))
        build = model_api.load(task_flags.MODEL.value)
        # TensorFlow's logger has a handler of its own besides absl's: every line would show twice.
        tf.get_logger().handlers.clear()
        server = None
        membership = Membership(task, cluster, task_flags.MODEL_DIR.value)
        if task.job != EVALUATOR:
            # Under a private identity: the cluster is each session's (see `membership`), so it can change.
            server = membership_lib.boot_server(membership.own_address)
            logging.info("%s serving at %s", task, server.target)
            tcp_keepalive.start()  # its connections to its peers, and theirs to it (see `tcp_keepalive`)
        launch_gate.pass_gate()
        if task.job == EVALUATOR:
            return evaluation.run(task_flags.MODEL_DIR.value, build, task_flags.TRAIN_STEPS.value, stop)
        if task.job == PS:
            return ps_release.serve_until_released(server, task, membership, task_flags.PS_ORPHAN_SECS.value, stop)
        serving = serving_export.serving_graph(build) if task_flags.EXPORT_SERVING.value else None
        training.train(
            task, membership, server.target, build,
            hooks.HookConfig(
                is_chief=task.job == CHIEF, model_dir=task_flags.MODEL_DIR.value,
                last_step=task_flags.TRAIN_STEPS.value,
                save_checkpoint_steps=task_flags.SAVE_CHECKPOINT_STEPS.value,
                save_checkpoint_secs=task_flags.SAVE_CHECKPOINT_SECS.value,
                save_summaries_steps=task_flags.SAVE_SUMMARIES_STEPS.value,
                log_step_count_steps=task_flags.LOG_STEP_COUNT_STEPS.value,
                wait_for_workers_secs=task_flags.WAIT_FOR_WORKERS_SECS.value),
            max_to_keep=task_flags.MAX_TO_KEEP.value, max_wait_secs=task_flags.MAX_WAIT_SECS.value,
            recovery_wait_secs=task_flags.RECOVERY_WAIT_SECS.value,
            recovery_deadline_secs=task_flags.RECOVERY_DEADLINE_SECS.value, stop=stop,
            step_timeout_secs=task_flags.STEP_TIMEOUT_SECS.value,
            sync_options=sync_replicas.SyncOptions(task_flags.SYNC_REPLICAS.value, task_flags.BACKUP_WORKERS.value))
        if serving is not None and not stop.requested:
            serving_export.export_latest(serving, task_flags.MODEL_DIR.value)
    except UserError as e:
        _fail(str(e))
    except RecoveryDeadlineExceeded as e:
        logging.error("%s", e)
        failure_report.report(e)
        return exit_codes.TRAINING_FAILED
    return stop.exit_code if stop.requested else exit_codes.OK


def _exit_now_if_a_close_hangs(code: Optional[int]) -> Optional[int]:
    """The exit code; but a process that left a call running (a session's close or probe: see
    `bounded_call`) ends here, with os._exit: Python's exit would delete that session and wait for its
    close, for ever."""
    if bounded_call.abandoned.is_set():
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code or exit_codes.OK)
    return code


def run(stop: StopRequest) -> None:
    try:
        model_api.load(_peek_model(sys.argv))  # defines the model's flags before they are parsed
    except UserError as e:
        _fail(str(e))
    import_heap.imports_done()
    app.run(lambda argv: _exit_now_if_a_close_hangs(main(argv, stop)), flags_parser=_parse_flags)
