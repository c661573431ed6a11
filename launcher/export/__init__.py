"""Ways to run a spec without the launcher supervising it: a Kubeflow TFJob, or one TF_CONFIG command per host.

Both reuse `task_command` and `tf_config`, so an exported task runs the same program, with the same flags and
exit codes, as one the launcher starts itself.
"""
