"""The evaluator's own task flags (absl only, no TensorFlow: the launcher checks them before starting).

Set them with `--evaluator_flags`, e.g. `--evaluator_flags="--eval_steps=50 --keep_best=accuracy:max"`.
"""

from __future__ import annotations

from typing import Optional

from absl import flags

from launcher.cluster import metric_rule, settings
from launcher.cluster.metric_rule import MetricRule

EVAL_STEPS = flags.DEFINE_integer(
    "eval_steps", None, "Eval batches per checkpoint; by default, until the eval input ends "
    "(OutOfRangeError), so that metrics cover the whole eval set.", lower_bound=1)
# Defaults are the launcher's own options' (settings.Evaluator): `launcher run` passes on what differs.
KEEP_BEST = flags.DEFINE_string(
    "keep_best", settings.default("keep_best"), "METRIC or METRIC:max: keep the checkpoint with the best "
    "METRIC (lower is better, unless :max) in <model_dir>/best/, out of max_to_keep's reach, and export that "
    "one for serving.")
EARLY_STOP = flags.DEFINE_string(
    "early_stop", settings.default("early_stop"), "METRIC or METRIC:max: stop training once METRIC has not "
    "improved for --patience evaluations in a row; the chief saves at the step reached and the run ends with "
    "exit 0.")
PATIENCE = flags.DEFINE_integer("patience", settings.default("patience"), "Evaluations without improvement "
                                "that end training with --early_stop.", lower_bound=1)


def parse_keep_best(value: Optional[str]) -> Optional[MetricRule]:
    return metric_rule.parse(value, "keep_best")


def _valid(value: Optional[str]) -> bool:
    try:
        metric_rule.parse(value)
    except ValueError:
        return False
    return True


flags.register_validator(KEEP_BEST, _valid, "expected METRIC, METRIC:min or METRIC:max")
flags.register_validator(EARLY_STOP, _valid, "expected METRIC, METRIC:min or METRIC:max")
