"""What one run is: the resolved spec and its settings, grouped by concern (see `settings`).

A RunConfig checks itself, so `launcher run` and `launcher export` refuse the same bad values with the same
words. Its defaults are the settings' own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from launcher.cluster import settings, task_command
from launcher.cluster.errors import UserError
from launcher.cluster.spec import CHIEF, EVALUATOR, WORKER, ClusterSpec


@dataclasses.dataclass(frozen=True, init=False)
class RunConfig:
    """`RunConfig(spec, train_steps=50, hang_secs=30)`: options by name, each into its group; read them by
    name too (`config.hang_secs`), or a whole group (`config.watchdog`)."""

    spec: ClusterSpec
    training: settings.Training
    restarts: settings.Restarts
    stopping: settings.Stopping
    output: settings.Output
    watchdog: settings.Watchdog
    evaluator: settings.Evaluator
    sync: settings.Sync
    gpus: settings.Gpus
    engine: settings.Engine
    ray: settings.Ray

    def __init__(self, spec: ClusterSpec, **values: Any) -> None:
        object.__setattr__(self, "spec", spec)
        for attr, group in settings.RUN_GROUPS.items():
            given = values.pop(attr, None)  # a whole group, as dataclasses.replace passes it
            if given is None:
                names = {f.name for f in dataclasses.fields(group)}
                given = group(**{name: values.pop(name) for name in list(values) if name in names})
            object.__setattr__(self, attr, given)
        if values:
            raise TypeError(f"RunConfig: no such option: {', '.join(sorted(values))}")
        self._check()

    def __getattr__(self, name: str) -> Any:
        group = settings.GROUP_OF.get(name)
        if group is None:
            raise AttributeError(name)
        return getattr(getattr(self, group), name)

    def _check(self) -> None:
        """What needs the spec besides the options."""
        for declared in settings.declared(settings.RUN):  # a task's flag, set, and no task to take it
            roles = declared.option.task_flag_for
            if roles and getattr(self, declared.name) != declared.default and \
                    not any(self.spec.count(role) for role in roles):
                role = roles[0]
                raise UserError(f"--{declared.name} needs {'an' if role[0] in 'aeiou' else 'a'} {role}, and the "
                                f"spec {self.spec.source} has none (add \"{role}\": [\"localhost:0\"] to its cluster)")
        if self.backup_workers and not self.sync_replicas:
            raise UserError(f"--backup_workers {self.backup_workers} needs --sync_replicas")
        replicas = self.spec.count(CHIEF) + self.spec.count(WORKER)
        if self.backup_workers >= replicas:
            raise UserError(f"--backup_workers {self.backup_workers}: must be below the number of training "
                            f"tasks, {replicas} in {self.spec.source} (the chief and the workers)")
        if self.evaluator_gpus and not self.spec.count(EVALUATOR):
            raise UserError(f"--evaluator_gpus needs an evaluator, and the spec {self.spec.source} has none")
        task_command.check_role_flags(self.spec)

    def task_flags(self, role: str) -> list[str]:
        """The task flags of `role` that stand for launcher options (the evaluator's --keep_best ...)."""
        return settings.task_flags([getattr(self, attr) for attr in settings.RUN_GROUPS], role)
