from launcher.task.program import run

run()
