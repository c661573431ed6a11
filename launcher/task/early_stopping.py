"""`--early_stop METRIC --patience N`: training ends once N evaluations in a row bring no improvement.

The evaluator judges (it sees every score); it tells the launcher, which asks the chief and the workers to
finish (`task_env.FINISH_SIGNAL`): they stop after their current step, the chief saves at the step reached,
and the run ends with exit 0, saying why.
"""

from __future__ import annotations

from typing import Optional

from launcher.cluster.metric_rule import MetricRule


class EarlyStopping:
    def __init__(self, rule: MetricRule, patience: int):
        self.rule = rule
        self.patience = patience
        self.best: Optional[float] = None
        self.best_step: Optional[int] = None
        self._without_improvement = 0

    def update(self, step: int, metrics: dict[str, float]) -> Optional[str]:
        """Book one evaluation; the reason to stop training now, or None."""
        value = metrics[self.rule.metric]
        if self.rule.better(value, self.best):
            self.best, self.best_step, self._without_improvement = value, step, 0
            return None
        self._without_improvement += 1
        if self._without_improvement < self.patience:
            return None
        return (f"{self.rule.metric} has not improved for {self.patience} evaluations "
                f"(best {self.best:.6g} at step {self.best_step})")
