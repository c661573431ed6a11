"""The task program's absl flags, defined once, here.

Where `tf.compat.v1.train.MonitoredTrainingSession` has an argument for a setting, the flag bears its name,
so a TensorFlow user already knows it. The task's identity and cluster are not flags: they come from TF_CONFIG,
the one carrier that every engine injects. A model module defines its own flags next to these; every flag can
be set per role, from the spec's "flags" or the launcher's `--<role>_flags`.
"""

from absl import flags

from launcher.cluster import settings

MODEL = flags.DEFINE_string("model", settings.default("model"),
                            "Python module of the model: defines build(mode) -> launcher.Model.")
MODEL_DIR = flags.DEFINE_string("model_dir", None, "Checkpoints, summaries and logs go here.")
TRAIN_STEPS = flags.DEFINE_integer("train_steps", settings.default("train_steps"),
                                   "Train until the global step reaches this.", lower_bound=1)

SAVE_CHECKPOINT_STEPS = flags.DEFINE_integer(
    "save_checkpoint_steps", None, "Save a checkpoint every this many global steps (chief).", lower_bound=1)
SAVE_CHECKPOINT_SECS = flags.DEFINE_integer(
    "save_checkpoint_secs", 60, "Save a checkpoint every this many seconds, unless save_checkpoint_steps "
    "is set (chief).", lower_bound=1)
MAX_TO_KEEP = flags.DEFINE_integer("max_to_keep", 5, "Checkpoints kept on disk; older ones are deleted.",
                                   lower_bound=1)
SAVE_SUMMARIES_STEPS = flags.DEFINE_integer(
    "save_summaries_steps", 100, "Write TensorBoard summaries every this many global steps (chief).",
    lower_bound=1)
LOG_STEP_COUNT_STEPS = flags.DEFINE_integer(
    "log_step_count_steps", 100, "Log loss and steps/sec every this many steps.", lower_bound=1)
MAX_WAIT_SECS = flags.DEFINE_integer(
    "max_wait_secs", 1800, "How long a worker waits for the chief to make the model ready.", lower_bound=1)

RECOVERY_WAIT_SECS = flags.DEFINE_float(
    "recovery_wait_secs", 0.25, "How often a waiting worker checks whether the chief's model is ready, "
    "once it has waited a second (its first checks come sooner; TensorFlow's default is 30 s).",
    lower_bound=0.01)
RECOVERY_DEADLINE_SECS = flags.DEFINE_float(
    "recovery_deadline_secs", 300, "How long a session keeps trying to reconnect to tasks that went away "
    "(with back-off) before the task gives up.", lower_bound=1)
STEP_TIMEOUT_SECS = flags.DEFINE_float(
    "step_timeout_secs", 60, "A training step that takes longer than this, or than 10 times the slowest of "
    "the task's last 100 steps when that is longer, is cancelled and its session re-created: a step can wait "
    "for ever on a connection that a cut-off peer has closed. The task's first step has no limit; 0 for none.",
    lower_bound=0)
WAIT_FOR_WORKERS_SECS = flags.DEFINE_float(
    "wait_for_workers_secs", 300, "How long the chief, once the target step is reached, waits for workers "
    "to finish their last step before its final checkpoint.", lower_bound=0)
PS_ORPHAN_SECS = flags.DEFINE_float(
    "ps_orphan_secs", 600, "How long a ps keeps serving while its chief does not accept connections before "
    "it gives up (exit 1); a ps ends by itself (exit 0) once the chief has saved the final checkpoint.",
    lower_bound=1)

EXPORT_SERVING = flags.DEFINE_bool(
    "export_serving", False, "Chief: once training has reached the target, export the final checkpoint as a "
    "SavedModel for serving (for a model that declares launcher.Serving). The launcher sets it when the spec "
    "has no evaluator; with one, the evaluator exports (the best checkpoint with --keep_best).")

SYNC_REPLICAS = flags.DEFINE_bool(
    "sync_replicas", False, "Chief and workers: train synchronously, wrapping the model's optimizer in a "
    "tf.compat.v1.train.SyncReplicasOptimizer (set by the launcher's --sync_replicas for every training task).")
BACKUP_WORKERS = flags.DEFINE_integer(
    "backup_workers", 0, "With --sync_replicas: each step aggregates the first (chief + workers - this) "
    "gradients and drops the stragglers' (set by the launcher's --backup_workers).", lower_bound=0)
