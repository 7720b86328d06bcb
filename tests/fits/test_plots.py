"""fits.plots: valid SVG with the expected elements, and bounded size and time with 10,000 runs."""

import time
import xml.etree.ElementTree as ET
from dataclasses import replace

import numpy as np
import pytest

from fits import plots
from fits.laws import Observations, fit_law, load_chinchilla_epoch
from planner import plots as plan_plots

SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def _texts(root: ET.Element) -> str:
    return " ".join("".join(t.itertext()) for t in root.iter(f"{SVG}text"))


def _big(data: Observations, n: int = 10_000) -> Observations:
    rng = np.random.default_rng(7)
    pick = rng.integers(0, data.n_runs, n)
    noise = 1 + 0.01 * rng.standard_normal(n)
    evals = np.flatnonzero(np.isin(data.eval_run, pick[:2000]))
    position = {int(run): i for i, run in enumerate(pick[:2000])}  # first occurrence wins below
    keep = [j for j in evals if int(data.eval_run[j]) in position]
    return Observations(
        n_params=data.n_params[pick],
        n_tokens=data.n_tokens[pick],
        weight_bits=data.weight_bits[pick],
        activation_bits=data.activation_bits[pick],
        kv_bits=data.kv_bits[pick],
        final_loss=data.final_loss[pick] * noise,
        eval_run=np.asarray([position[int(data.eval_run[j])] for j in keep], dtype=np.intp),
        eval_post_bits=data.eval_post_bits[keep],
        eval_loss=data.eval_loss[keep],
    )


def test_every_fit_plot_is_valid_svg_with_titles_and_axes(kumar_fit, kumar_data):
    rendered = plots.fit_plots(kumar_fit, kumar_data)
    assert [p.key for p in rendered] == [
        "observed-vs-predicted",
        "residuals",
        "loss-vs-bits",
        "effective-params",
        "ptq",
    ]
    expected = {
        "observed-vs-predicted": ["Observed vs predicted", "y = x", "training bits"],
        "residuals": ["Residuals vs model size N", "median per N bin"],
        "loss-vs-bits": ["Weights", "Activations", "KV cache", "fitted law"],
        "effective-params": ["N_eff / N", "weights", "activations", "KV cache", "bootstrap draws"],
        "ptq": ["PTQ degradation", "post-train bits", "3-bit", "8-bit", "fitted law"],
    }
    for plot in rendered:
        root = _parse(plot.svg)
        text = _texts(root)
        for phrase in expected[plot.key]:
            assert phrase in text, (plot.key, phrase)
        assert len(list(root.iter(f"{SVG}path"))) > 5


def test_observed_vs_predicted_draws_one_marker_per_run(kumar_fit, kumar_data):
    root = _parse(plots.observed_vs_predicted_svg(kumar_fit, kumar_data))
    markers = list(root.iter(f"{SVG}use"))
    assert len(markers) >= kumar_data.n_runs  # scatter markers (plus colour-bar and tick uses)


def test_bootstrap_bands_are_drawn(kumar_fit, kumar_data):
    with_band = plots.effective_params_svg(kumar_fit, kumar_data)
    no_draws = replace(kumar_fit, draws=np.zeros((0, len(kumar_fit.draw_names))))
    assert len(with_band) > len(plots.effective_params_svg(no_draws, kumar_data))


def test_ten_thousand_runs_are_sampled_with_a_note_and_stay_small(kumar_fit, kumar_data):
    big = _big(kumar_data)
    started = time.perf_counter()
    rendered = plots.fit_plots(kumar_fit, big)
    elapsed = time.perf_counter() - started
    for plot in rendered:
        _parse(plot.svg)
        assert len(plot.svg) < 600_000, plot.key
    obs = _texts(_parse(rendered[0].svg))
    assert "showing a random 2,000 of 10,000 runs" in obs
    markers = sum(1 for _ in _parse(rendered[0].svg).iter(f"{SVG}use"))
    assert markers < 2_300
    assert elapsed < 20, elapsed


def test_sample_is_seeded_and_sorted():
    first, again = plots.sample_indices(10_000), plots.sample_indices(10_000)
    assert np.array_equal(first, again)
    assert first.size == plots.MAX_POINTS
    assert np.all(np.diff(first) > 0)
    assert np.array_equal(plots.sample_indices(10), np.arange(10))


def test_chinchilla_fit_explains_the_missing_precision_plots():
    data = load_chinchilla_epoch()
    result = fit_law("chinchilla", data, n_bootstrap=0)
    by_key = {p.key: p for p in plots.fit_plots(result, data)}
    assert "ignores precision" in _texts(_parse(by_key["loss-vs-bits"].svg))
    assert "no precision term" in _texts(_parse(by_key["effective-params"].svg))
    assert "No PTQ evaluations" in _texts(_parse(by_key["ptq"].svg))
    assert "y = x" in _texts(_parse(by_key["observed-vs-predicted"].svg))


def test_plan_contour_marks_optimum_and_baseline(kumar_fit):
    svg = plan_plots.plan_contour_svg(
        law="precision",
        params=kumar_fit.all_params,
        budget_flops=1e21,
        optimum=plan_plots.PlanPoint("optimum", 1.2e9, 7.0, 2.9),
        baseline=plan_plots.PlanPoint("16-bit baseline", 8e8, 16.0, 2.95),
    )
    text = _texts(_parse(svg))
    assert "optimum (2.9000)" in text
    assert "16-bit baseline (2.9500)" in text
    assert "predicted loss" in text
    assert "Iso-loss" in text


@pytest.mark.parametrize("n_runs", [0, 1])
def test_tiny_data_still_draws_every_plot_with_its_title(kumar_fit, kumar_data, n_runs):
    data = kumar_data.subset(np.arange(kumar_data.n_runs) < n_runs)
    rendered = plots.fit_plots(kumar_fit, data)
    titles = {
        "observed-vs-predicted": "Observed vs predicted final loss",
        "residuals": "Residuals vs model size N",
        "loss-vs-bits": "Loss vs training bits",
        "effective-params": "Effective parameters N_eff/N vs training bits",
        "ptq": "PTQ degradation",
    }
    assert [p.key for p in rendered] == list(titles)
    for plot in rendered:
        assert titles[plot.key] in _texts(_parse(plot.svg)), plot.key
    # With no run the scatter says so instead of drawing empty axes; one run is drawn as one run.
    observed = _texts(_parse(rendered[0].svg))
    assert ("No runs." in observed) == (n_runs == 0)
    assert ("1 runs" in observed) == (n_runs == 1)
