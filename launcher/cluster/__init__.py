"""What both kinds of process share, free of TensorFlow: the spec, TF_CONFIG, the task's command line,
the status protocol, exit codes and errors. The launcher and the task program both import from here."""
