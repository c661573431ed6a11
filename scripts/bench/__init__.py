"""The pieces of scripts/benchmark.py, one concept a module.

Trials: launcher_trial (one `launcher run`), plain (the same model in one bare process), floor (bare
TensorFlow servers), recovery (a task killed mid-training; its figures in recovery_figures).
Running them: comparison (every spec, model and backend, repeated), trials (a failed trial is reported and
the benchmark goes on), launcher_process (a launcher in a throwaway directory), processes (children in
sessions of their own, cleaned up), rss (peak memory per task), netns (Ray in a loopback-only namespace),
task_logs (reading the tasks' logs).
Output: table (text tables), report and recovery_report (tables and legends), out_json (raw figures).
"""
