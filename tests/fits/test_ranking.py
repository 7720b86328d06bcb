"""fits.ranking: the order of a family's laws by backtest error, without a database."""

import itertools

import pytest

from fits.ranking import MIN_HELD_OUT_RUNS, REASON_OLD_FIT, TIE_RELATIVE, LawFit, rank_laws


def law_fit(law, score=None, *, n_params=5, n_runs=40, fit_id=None, backtest=None, warnings=()):
    if backtest is None:
        backtest = {"rmse_log": 0.5, "n_held_out": 6.0}
        if score is not None:
            backtest.update(rmse_log_runs=score, n_held_out_runs=4.0)
    return LawFit(
        law=law,
        fit_id=fit_id or hash(law) % 1000,
        version=1,
        backtest=backtest,
        n_params_fitted=n_params,
        n_runs=n_runs,
        warnings=warnings,
    )


def order(ranking):
    return [entry.law for entry in ranking.entries]


def test_laws_are_ordered_by_backtest_score_lowest_first():
    ranking = rank_laws([law_fit("precision", 0.030), law_fit("chinchilla", 0.010), law_fit("fp", 0.020)])

    assert order(ranking) == ["chinchilla", "fp", "precision"]
    assert [e.rank for e in ranking.entries] == [1, 2, 3]
    assert [e.score for e in ranking.entries] == [0.010, 0.020, 0.030]
    assert ranking.best == "chinchilla"
    assert all(e.ranked and e.eligible and e.reason is None for e in ranking.entries)
    assert ranking.entries[0].n_held_out_runs == 4


def test_scores_within_two_percent_are_ordered_by_fewer_fitted_parameters():
    # 1.5% apart: a tie, so the simpler law ranks first although its score is higher.
    ranking = rank_laws([law_fit("precision", 0.0100, n_params=11), law_fit("chinchilla", 0.01015, n_params=5)])
    assert order(ranking) == ["chinchilla", "precision"]
    assert ranking.best == "chinchilla"


def test_scores_further_apart_than_the_tie_band_are_not_reordered():
    apart = 0.0100 * (1 + TIE_RELATIVE) * 1.01
    ranking = rank_laws([law_fit("precision", 0.0100, n_params=11), law_fit("chinchilla", apart, n_params=5)])
    assert order(ranking) == ["precision", "chinchilla"]


def test_a_tie_in_score_and_parameters_is_broken_by_law_name_whatever_the_input_order():
    fits = [law_fit("precision", 0.02, n_params=5), law_fit("chinchilla", 0.02, n_params=5), law_fit("fp", 0.02)]
    orders = {tuple(order(rank_laws(list(p)))) for p in itertools.permutations(fits)}
    assert orders == {("chinchilla", "fp", "precision")}


def test_the_tie_band_is_anchored_on_the_lowest_score_of_its_group():
    # 0.0100 and 0.0101 tie; 0.01025 is within 2% of 0.0101 but not of 0.0100, so it starts the next group.
    ranking = rank_laws(
        [law_fit("a", 0.0100, n_params=9), law_fit("b", 0.0101, n_params=3), law_fit("c", 0.01025, n_params=1)]
    )
    assert order(ranking) == ["b", "a", "c"]


def test_a_fit_from_before_law_ranking_is_listed_unranked_after_the_ranked_ones():
    ranking = rank_laws([law_fit("precision", backtest={"rmse_log": 0.01, "n_held_out": 8.0}), law_fit("fp", 0.05)])

    assert order(ranking) == ["fp", "precision"]
    old = ranking.get("precision")
    assert old is not None
    assert (old.ranked, old.eligible, old.rank, old.score) == (False, False, None, None)
    assert old.reason == REASON_OLD_FIT == "fitted before law ranking; refit to rank"
    assert ranking.best == "fp"


def test_a_fit_whose_backtest_was_not_computed_says_why():
    warning = "backtest not computed (fit without the largest N failed: no spread in N)"
    ranking = rank_laws([law_fit("chinchilla", backtest={"n_held_out": 3.0}, warnings=["other note", warning])])

    (entry,) = ranking.entries
    assert not entry.ranked
    assert entry.reason == warning
    assert ranking.best is None


def test_a_non_finite_score_is_unranked():
    ranking = rank_laws([law_fit("chinchilla", float("nan")), law_fit("precision", 0.02)])
    assert order(ranking) == ["precision", "chinchilla"]
    assert not ranking.get("chinchilla").ranked
    assert "not a finite" in ranking.get("chinchilla").reason


def test_a_law_covering_fewer_runs_is_ranked_but_cannot_be_best():
    ranking = rank_laws([law_fit("fp", 0.005, n_runs=12), law_fit("precision", 0.02, n_runs=40)])

    assert order(ranking) == ["fp", "precision"]
    fp = ranking.get("fp")
    assert (fp.ranked, fp.rank, fp.eligible) == (True, 1, False)
    assert "covers 12 of the 40 runs" in fp.reason
    assert ranking.best == "precision"


def test_coverage_is_compared_with_unranked_fits_too():
    # An unranked precision fit (no run-level score) covers every run: the fp fit's backtest saw a subset, so fp
    # is not eligible; it is still named best, the only law with a score, and the warnings say on what it rests.
    ranking = rank_laws([law_fit("fp", 0.005, n_runs=12), law_fit("precision", n_runs=40, backtest={"rmse_log": 0.01})])
    assert ranking.best == "fp"
    assert ranking.get("fp").ranked
    assert not ranking.get("fp").eligible
    assert any("fp is named best though covers 12 of the 40 runs" in w for w in ranking.warnings)


def test_a_fit_that_does_not_say_how_many_runs_it_covers_is_not_penalised():
    ranking = rank_laws([law_fit("chinchilla", 0.01, n_runs=None), law_fit("precision", 0.02, n_runs=40)])
    assert ranking.best == "chinchilla"


def test_no_fits_no_ranking():
    ranking = rank_laws([])
    assert ranking.entries == ()
    assert ranking.best is None


@pytest.mark.parametrize("score", [0.0, 1e-12])
def test_a_zero_score_ties_only_with_itself(score):
    ranking = rank_laws([law_fit("precision", 0.0, n_params=11), law_fit("chinchilla", score, n_params=5)])
    expected = ["chinchilla", "precision"] if score == 0.0 else ["precision", "chinchilla"]
    assert order(ranking) == expected


def test_entries_serialise_to_the_api_fields():
    (entry,) = rank_laws([law_fit("chinchilla", 0.01, fit_id=7)]).entries
    assert entry.as_dict() == {
        "law": "chinchilla",
        "fit_id": 7,
        "version": 1,
        "score": 0.01,
        "n_held_out_runs": 4,
        "n_params_fitted": 5,
        "n_runs": 40,
        "ranked": True,
        "eligible": True,
        "reason": None,
        "rank": 1,
        "stale": False,
        "scheme": "largest_n",  # a backtest that does not name its scheme held out the largest N
        "held_out_n_params": [],
        "n_runs_covered": 40,
        "quality": None,
    }


def test_a_best_law_scored_on_few_held_out_runs_is_flagged():
    few = rank_laws([law_fit("chinchilla", 0.010, backtest={"rmse_log_runs": 0.010, "n_held_out_runs": 1.0})])
    assert few.best == "chinchilla"
    assert len(few.warnings) == 1
    assert "rests on 1 held-out run " in few.warnings[0]

    enough = {"rmse_log_runs": 0.010, "n_held_out_runs": float(MIN_HELD_OUT_RUNS)}
    assert rank_laws([law_fit("chinchilla", 0.010, backtest=enough)]).warnings == []
    assert rank_laws([law_fit("precision")]).warnings == []  # no best law, nothing to weaken


# -- run-level comparison, verdicts and the bits rule -------------------------------------------------------------


def scored(law, residuals, *, n_params=5, runs=None, fingerprint="f", quality="", models_bits=False, **extra):
    """A fit whose backtest carries run-level residuals (None: no prediction) on held-out runs `runs`."""
    finite = [r for r in residuals if r is not None]
    backtest = {
        "rmse_log_runs": (sum(r * r for r in finite) / len(finite)) ** 0.5,
        "n_held_out_runs": float(len(finite)),
        "held_out_runs": list(runs if runs is not None else range(len(residuals))),
        "residuals_runs": list(residuals),
    }
    return LawFit(
        law=law,
        fit_id=hash(law) % 1000,
        version=1,
        backtest=backtest,
        n_params_fitted=n_params,
        n_runs=40,
        data_fingerprint=fingerprint,
        quality=quality,
        models_bits=models_bits,
        **extra,
    )


NOISY = [0.031, -0.012, 0.044, -0.020, 0.027, -0.038, 0.015]


def test_a_score_difference_the_held_out_runs_cannot_show_is_a_tie_won_by_the_simpler_law():
    # fp scores 20% below chinchilla on 7 held-out runs, but run by run the difference is within its noise
    # (Gadre's C4 sweep: t = -1.0): the law with fewer parameters goes first.
    fp = [0.010, -0.030, 0.020, -0.025, 0.015, -0.020, 0.030]  # better on four runs, worse on three
    ranking = rank_laws([scored("fp", fp, n_params=6), scored("chinchilla", NOISY)])
    assert ranking.get("fp").score < ranking.get("chinchilla").score
    assert order(ranking) == ["chinchilla", "fp"]
    assert ranking.best == "chinchilla"


def test_a_difference_every_held_out_run_shows_ranks_the_better_law_first():
    better = [r * 0.3 for r in NOISY]
    ranking = rank_laws([scored("fp", better, n_params=6), scored("chinchilla", NOISY)])
    assert order(ranking) == ["fp", "chinchilla"]


def test_runs_are_paired_only_within_the_same_snapshot():
    fp = [0.8 * r for r in NOISY]
    ranking = rank_laws([scored("fp", fp, n_params=6, fingerprint="a"), scored("chinchilla", NOISY, fingerprint="b")])
    assert order(ranking) == ["fp", "chinchilla"]  # not paired: 20% apart is beyond TIE_RELATIVE


def test_an_unusable_fit_is_not_ranked_and_says_why():
    ranking = rank_laws(
        [
            scored("precision", [0.001] * 5, quality="unusable", quality_reasons=["no signal: the law explains 0.0%"]),
            scored("chinchilla", NOISY),
        ]
    )
    entry = ranking.get("precision")
    assert not entry.ranked
    assert not entry.eligible
    assert entry.rank is None
    assert entry.reason == "unusable fit: no signal: the law explains 0.0%"
    assert ranking.best == "chinchilla"


def test_a_law_ignoring_the_bits_a_family_varies_is_not_best_when_a_bit_aware_law_predicts_better():
    # The precision law cannot score two held-out runs (outside its domain): its score rests on 5 runs, and is
    # higher than chinchilla's on 7; on the 5 runs both predict, precision is better, so chinchilla is not eligible.
    precision = [0.002, -0.003, 0.004, None, None, 0.003, -0.002]
    chinchilla = [0.030, -0.025, 0.020, 0.0, 0.0, -0.028, 0.026]
    ranking = rank_laws(
        [
            scored("precision", [0.020, -0.015, 0.024, None, None, 0.011, -0.019], models_bits=True, varies_bits=True),
            scored("chinchilla", [0.0, 0.0, 0.0, 0.001, -0.001, 0.0, 0.0], varies_bits=True),
        ]
    )
    assert ranking.best == "chinchilla"  # no bit-aware law predicts the common runs better: chinchilla may be best
    ranking = rank_laws(
        [
            scored("precision", precision, n_params=9, models_bits=True, varies_bits=True),
            scored("chinchilla", chinchilla, varies_bits=True),
        ]
    )
    entry = ranking.get("chinchilla")
    assert not entry.eligible
    assert entry.reason.startswith("ignores the training bits this family varies, and precision predicts")
    assert "on 5 runs" in entry.reason
    assert ranking.best == "precision"


def test_the_bits_rule_leaves_a_family_that_does_not_vary_bits_alone():
    ranking = rank_laws(
        [scored("precision", [r * 0.5 for r in NOISY], n_params=9, models_bits=True), scored("chinchilla", NOISY)]
    )
    assert all(e.eligible for e in ranking.entries)


def test_eligibility_counts_screened_runs_as_covered_and_says_so():
    # Chinchilla fitted 692 runs and screened 68: it covers the 760 precision fitted (the case).
    ranking = rank_laws(
        [
            LawFit("chinchilla", 1, 1, {"rmse_log_runs": 0.02, "n_held_out_runs": 6.0}, 5, 692, n_screened=68),
            LawFit("precision", 2, 1, {"rmse_log_runs": 0.01, "n_held_out_runs": 6.0}, 9, 760),
        ]
    )
    assert ranking.get("chinchilla").n_runs_covered == 760
    assert ranking.get("chinchilla").as_dict()["n_runs_covered"] == 760
    assert all(e.eligible for e in ranking.entries)
