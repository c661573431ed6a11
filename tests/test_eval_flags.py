"""--keep_best's METRIC[:min|:max]: which way is better, and what is refused."""

import pytest

from launcher.task.eval_flags import parse_keep_best


@pytest.mark.parametrize("value, metric, higher", [
    ("loss", "loss", False), ("mse:min", "mse", False), ("accuracy:max", "accuracy", True),
    ("top:5:max", "top:5", True)])
def test_keep_best_parses(value, metric, higher):
    rule = parse_keep_best(value)
    assert (rule.metric, rule.higher_is_better) == (metric, higher)
    assert rule.better(2.0, 1.0) is higher and rule.better(1.0, 2.0) is not higher
    assert rule.better(1.0, None)  # the first score is the best so far
    assert not rule.better(1.0, 1.0)  # a tie keeps the earlier checkpoint


@pytest.mark.parametrize("value", ["accuracy:best", ":max", "accuracy:"])
def test_keep_best_refuses(value):
    with pytest.raises(ValueError, match="METRIC:max"):
        parse_keep_best(value)


def test_keep_best_unset():
    assert parse_keep_best(None) is None and parse_keep_best("") is None
