"""The report's plateau rule (Keras EarlyStopping over evaluations) on synthetic curves."""

import pytest

from tfodkit.experiments.plateau import Plateau, Rule, find_plateau

STEPS = [100 * (i + 1) for i in range(12)]


def _find(values, min_delta=0.01, patience=3, minimise=False):
    return find_plateau(STEPS[: len(values)], values, Rule(min_delta, patience, minimise))


def test_flat_curve_plateaus_at_its_first_evaluation():
    # The first evaluation sets the best; `patience` evaluations without a gain later the rule stops.
    assert _find([0.5] * 6) == Plateau(step=100, plateaued=True, stopped_at=400)


def test_rising_curve_has_not_plateaued_and_points_at_the_last_evaluation():
    assert _find([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]) == Plateau(step=600, plateaued=False, stopped_at=None)


def test_rise_then_flat_plateaus_where_the_gains_fall_below_min_delta():
    # 0.55 gains 0.05 over 0.5; 0.555, 0.556, 0.557 each gain less than 0.01 over 0.55.
    assert _find([0.1, 0.3, 0.5, 0.55, 0.555, 0.556, 0.557]) == Plateau(step=400, plateaued=True, stopped_at=700)


def test_noisy_plateau_reports_the_evaluation_early_stopping_restores_not_the_noisy_maximum():
    # 0.605 is the highest value but only 0.005 above the best 0.6: noise, not an improvement.
    assert _find([0.2, 0.4, 0.6, 0.59, 0.605, 0.598, 0.603]) == Plateau(step=300, plateaued=True, stopped_at=600)


def test_an_improvement_within_patience_resets_the_count():
    assert _find([0.5, 0.49, 0.48, 0.6, 0.59, 0.58, 0.57]) == Plateau(step=400, plateaued=True, stopped_at=700)


def test_still_rising_at_the_end_after_a_pause_shorter_than_patience():
    assert _find([0.1, 0.2, 0.3, 0.3, 0.3, 0.4]) == Plateau(step=600, plateaued=False, stopped_at=None)


def test_fewer_non_improving_evaluations_than_patience_at_the_end_is_not_a_plateau():
    assert _find([0.1, 0.5, 0.5, 0.5]) == Plateau(step=400, plateaued=False, stopped_at=None)
    assert _find([0.1, 0.5, 0.5, 0.5, 0.5]) == Plateau(step=200, plateaued=True, stopped_at=500)


def test_a_gain_of_exactly_min_delta_is_not_an_improvement():
    # Binary-exact values: 0.75 - 0.25 == 0.5 is not more than the best 0.5.
    assert _find([0.5, 0.75], min_delta=0.25, patience=1) == Plateau(step=100, plateaued=True, stopped_at=200)
    assert _find([0.5, 0.75 + 1e-9], min_delta=0.25, patience=1) == Plateau(step=200, plateaued=False,
                                                                            stopped_at=None)


def test_min_delta_zero_counts_any_strict_gain_and_no_tie():
    assert _find([0.5, 0.5 + 1e-12], min_delta=0.0, patience=1).plateaued is False
    assert _find([0.5, 0.5], min_delta=0.0, patience=1) == Plateau(step=100, plateaued=True, stopped_at=200)


def test_patience_one_stops_at_the_first_evaluation_without_a_gain():
    assert _find([0.1, 0.2, 0.2, 0.9], patience=1) == Plateau(step=200, plateaued=True, stopped_at=300)


def test_loss_mode_looks_for_the_point_where_the_loss_stops_falling():
    # 0.69 falls 0.01 below 0.7, not more than min_delta 0.05; nor does anything after it.
    assert _find([1.0, 0.8, 0.7, 0.69, 0.695, 0.70], min_delta=0.05, minimise=True) == Plateau(
        step=300, plateaued=True, stopped_at=600)
    assert _find([1.0, 0.8, 0.6, 0.4], min_delta=0.05, minimise=True) == Plateau(step=400, plateaued=False,
                                                                                 stopped_at=None)
    # A rising loss is never an improvement.
    assert _find([0.5, 0.6, 0.7, 0.8], minimise=True) == Plateau(step=100, plateaued=True, stopped_at=400)


def test_one_evaluation_has_not_plateaued():
    assert _find([0.3]) == Plateau(step=100, plateaued=False, stopped_at=None)


@pytest.mark.parametrize("steps, values, rule", [
    ([], [], Rule(0.01, 3, False)),
    ([1, 2], [0.1], Rule(0.01, 3, False)),
    ([1], [0.1], Rule(0.01, 0, False)),
    ([1], [0.1], Rule(-0.1, 3, False)),
])
def test_bad_arguments_are_refused(steps, values, rule):
    with pytest.raises(ValueError):
        find_plateau(steps, values, rule)
