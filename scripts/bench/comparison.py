"""The comparison: for each spec, model and backend, the launcher beside the plain process and the floor,
all repeated; failed trials are listed, not fatal."""

from __future__ import annotations

from typing import Optional, Sequence

from bench.floor import run_floor
from bench.launcher_trial import run_launcher
from bench.netns import ray_unavailable
from bench.plain import run_plain
from bench.trials import announce, attempt

DEFAULT_SPECS = ("local1", "local2", "local4")
DEFAULT_MODELS = ("launcher.models.linear", "launcher.models.mlp")
DEFAULT_TRAIN_STEPS = {"launcher.models.linear": 2000, "launcher.models.mlp": 300}
FALLBACK_TRAIN_STEPS = 1000
BACKENDS = ("local", "ray")


def steps_for(model: str, override: Optional[int]) -> int:
    """The global steps of a trial of `model`: `override`, else the model's default."""
    return override or DEFAULT_TRAIN_STEPS.get(model, FALLBACK_TRAIN_STEPS)


def run_comparison(specs: Sequence[str], models: Sequence[str], train_steps: Optional[int], repeat: int,
                   timeout_secs: float, backends: Sequence[str] = ("local",)) -> dict[str, list]:
    """Every trial, `repeat` times: results by kind ("launcher", "plain", "floor"), "errors" and "skipped"."""
    results: dict[str, list] = {"launcher": [], "plain": [], "floor": [], "errors": [], "skipped": []}
    if "ray" in backends:
        why = ray_unavailable()
        if why is not None:
            results["skipped"].append(f"ray rows skipped: {why}")
            announce(results["skipped"][-1])
            backends = [b for b in backends if b != "ray"]
    errors = results["errors"]
    for trial_number in range(1, repeat + 1):
        for model in models:
            announce(f"[{trial_number}/{repeat}] plain {model}")
            results["plain"].append(attempt(lambda: run_plain(model, steps_for(model, train_steps), timeout_secs),
                                            errors))
        for spec in specs:
            announce(f"[{trial_number}/{repeat}] floor {spec}")
            results["floor"].append(attempt(lambda: run_floor(spec, timeout_secs), errors))
            for model in models:
                for backend in backends:
                    announce(f"[{trial_number}/{repeat}] launcher {spec} {model} {backend}")
                    results["launcher"].append(attempt(
                        lambda: run_launcher(spec, model, steps_for(model, train_steps), timeout_secs, backend),
                        errors))
    for kind in ("launcher", "plain", "floor"):
        results[kind] = [r for r in results[kind] if r is not None]
    return results
