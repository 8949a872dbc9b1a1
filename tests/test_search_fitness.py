"""lpzero.search.fitness: Spearman fitness, the one place invalid proxies are decided."""
import math

import pytest
from deap import base, creator

from lpzero.search.fitness import INVALID_FITNESS, Evaluation, Invalid, correlation, spearman_fitness
from lpzero.search.toolbox import ensure_creator


def test_invalid_proxies_get_the_worst_fitness_and_a_reason_value():
    assert spearman_fitness([1.0, 1.0, 1.0], [1, 2, 3]).reason is Invalid.CONSTANT
    ev = spearman_fitness([1.0, math.nan, 2.0], [1, 2, 3])
    assert ev.fitness == INVALID_FITNESS and ev.reason is Invalid.NON_FINITE
    assert ev.describe() == "non-finite score on 1 of 3 architectures"
    assert INVALID_FITNESS < -1.0  # -1 is a legal rho
    assert spearman_fitness([3.0, 2.0, 1.0], [1, 2, 3]).spearman == pytest.approx(-1.0)


def test_scores_equal_up_to_rounding_are_constant():
    assert spearman_fitness([0.25, 0.25 * (1 + 1e-8), 0.25 * (1 - 1e-8)], [1, 2, 3]).reason is Invalid.CONSTANT
    assert spearman_fitness([0.25, 0.26, 0.27], [1, 2, 3]).valid


def test_reverse_ranking_is_as_fit_and_keeps_its_orientation():
    forward, reverse = spearman_fitness([1, 2, 3, 5], [1, 2, 3, 4]), spearman_fitness([5, 3, 2, 1], [1, 2, 3, 4])
    assert forward.fitness == reverse.fitness == pytest.approx(1.0)
    assert (forward.orientation, reverse.orientation) == (1, -1)
    assert forward.ranking == reverse.ranking  # the same proxy, up to orientation


def test_an_evaluation_is_a_deap_fitness_tuple():
    ensure_creator()
    fit = creator.ProxyFitness()
    fit.values = spearman_fitness([1, 2, 3], [3, 2, 1])
    assert fit.values == (pytest.approx(1.0),)
    assert isinstance(fit, base.Fitness)


def test_a_plain_tuple_from_a_custom_evaluate_becomes_an_evaluation():
    assert Evaluation.of((0.5,)) == Evaluation(0.5)
    assert Evaluation.of((INVALID_FITNESS,)).reason is Invalid.UNSPECIFIED


def test_correlation_record_names_why_it_is_missing():
    assert correlation([1, 1, 1], [1, 2, 3]) == {"spearman": None, "kendall": None, "n": 3,
                                                 "invalid_reason": "constant scores"}
    assert correlation([1, 2, 3], [1, 2, 3])["kendall"] == pytest.approx(1.0)
