"""The README stays true: its test command is what CI runs; and the example model of docs/models.md trains."""

import re

from conftest import REPO, checkpoint_steps

README = (REPO / "README.md").read_text()
MODELS_PAGE = (REPO / "docs" / "models.md").read_text()


def _commands():
    return re.findall(r"```sh\n(.*?)\n```", README, re.S)


def test_ci_runs_the_readme_test_command_after_installing_from_the_repo():
    install_and_run, test = _commands()[:2]
    ci = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == test
    assert install_and_run.startswith("pip install -e '.[test]' && python -m launcher run --spec local2.json")
    assert any("pip install" in line and "-e '.[test]'" in line for line in ci)


def test_example_model_trains_without_touching_the_launcher(runner, tmp_path):
    code = re.search(r"```python\n# my_model.py\n(.*?)```", MODELS_PAGE, re.S).group(1)
    (tmp_path / "my_model.py").write_text(code)
    model_dir = tmp_path / "model"
    launch = runner.run("run", "--spec", "local1", "--model", "my_model", "--model_dir", str(model_dir),
                        "--train_steps", "30", "--chief_flags=--scale=2")
    assert launch.proc.returncode == 0, launch.stderr
    assert checkpoint_steps(model_dir)[-1] == 30
