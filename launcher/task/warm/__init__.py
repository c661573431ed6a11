"""The warm process: TensorFlow, the task program and the model module imported once per run and machine,
then one fork per task process (see `launcher.cluster.warm_protocol` for how a launcher asks for one).

A forked task is the task program as a cold one runs it (`launcher.task.entry`), with its own session, pid,
argv, flags, environment, TF_CONFIG and output; only the import is shared. Forks are safe only from a
process that has started nothing of TensorFlow's runtime: `fork_safety` checks that before every fork.
"""
