"""The supervisor's decisions, each a small function from the run's state to a decision that the loop
(`supervisor`) carries out: what becomes of an ended process (`restart`), when tasks pass the start gate
(`gate`), what to do about a hang (`hang`), whom an early stop finishes (`early_stop`), and when the run is
over (`end_of_run`). None of them has side effects, reads a clock or talks to a process."""
