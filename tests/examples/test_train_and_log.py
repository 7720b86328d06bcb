"""examples/train_and_log.py: fake quantization, the hand-written backward pass, training and the payloads.

Each test checks a property (rounding grids, gradients against finite differences, loss against the
unigram baseline, PTQ degradation, payloads the API accepts), never printed numbers. All of it takes
a few seconds on one core.
"""

import importlib.util
import io
import re
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_and_log.py"


def _load():
    spec = importlib.util.spec_from_file_location("train_and_log", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_and_log"] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


tl = _load()


@pytest.fixture(scope="module")
def corpus():
    return tl.load_corpus(max_train_bytes=400_000, max_valid_bytes=40_000)


@pytest.fixture(scope="module")
def trained(corpus):
    """A small float model trained briefly, shared by the PTQ tests."""
    return tl.train(tl.ModelConfig(width=32, context=8, embed=8), corpus, 40_000, eval_tokens=8_000, ptq_bits=())


# Fake quantization -------------------------------------------------------------------------


@pytest.mark.parametrize("bits", [2, 3, 4, 6, 8])
def test_quantize_uses_two_to_the_bits_minus_one_symmetric_levels(bits):
    x = np.linspace(-1.0, 1.0, 20_001, dtype=np.float32)
    levels = np.unique(tl.quantize(x, bits))
    assert len(levels) == 2**bits - 1  # {-q..q}: the symmetric restricted range, within 2**bits codes
    assert len(levels) <= 2**bits
    np.testing.assert_allclose(levels, -levels[::-1], atol=1e-6)  # symmetric, zero included
    assert 0.0 in levels
    np.testing.assert_allclose(np.diff(levels), levels[-1] / (2 ** (bits - 1) - 1), rtol=1e-4)  # evenly spaced
    assert levels.max() == pytest.approx(1.0)  # absmax is exact


def test_quantize_per_channel_scales_each_column_by_its_own_absmax():
    rng = np.random.default_rng(1)
    w = (rng.standard_normal((64, 5)) * np.array([0.01, 0.1, 1.0, 10.0, 100.0])).astype(np.float32)
    q = tl.quantize(w, 4, axis=0)
    for column in range(w.shape[1]):
        assert len(np.unique(q[:, column])) <= 2**4 - 1
        assert np.abs(q[:, column]).max() == pytest.approx(np.abs(w[:, column]).max(), rel=1e-6)
        step = np.abs(w[:, column]).max() / 7
        assert np.abs(q[:, column] - w[:, column]).max() <= step / 2 * (1 + 1e-5)  # round to nearest
    # A single per-tensor scale would flatten the small columns to zero.
    assert np.all(tl.quantize(w, 4)[:, 0] == 0)


def test_quantize_error_shrinks_with_bits_and_16_bits_is_the_identity():
    x = np.random.default_rng(2).standard_normal((256, 64)).astype(np.float32)
    errors = [float(np.mean((tl.quantize(x, bits, axis=0) - x) ** 2)) for bits in (2, 3, 4, 5, 6, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))
    # Uniform rounding noise: each extra bit halves the step, so the error falls about fourfold.
    assert 3.0 < errors[3] / errors[4] < 5.0
    assert tl.quantize(x, 16) is x


def test_straight_through_estimator_passes_gradients_that_rounding_would_zero():
    rng = np.random.default_rng(3)
    x = rng.standard_normal(1000).astype(np.float32)
    g = rng.standard_normal(1000).astype(np.float32)
    np.testing.assert_array_equal(tl.quantize_ste_backward(g), g)
    # The true derivative of rounding is zero almost everywhere: a small nudge (absmax kept) changes nothing ...
    nudged = np.where(np.abs(x) < np.abs(x).max(), x + 1e-4, x).astype(np.float32)
    assert np.mean(tl.quantize(nudged, 4) == tl.quantize(x, 4)) > 0.95
    # ... yet a 4-bit model gets a useful gradient for every weight: one step along it lowers its loss.
    config = tl.ModelConfig(width=16, context=4, embed=4, bits=4)
    params = tl.init_params(config, np.random.default_rng(0))
    tokens = rng.integers(0, 256, size=400)
    xb, yb = tl.windows(tokens, np.arange(300), config.context)
    loss, grads = tl.forward_backward(params, xb, yb, config)
    for name in ("w1", "w2", "w3"):
        assert np.all(np.isfinite(grads[name]))
        assert np.count_nonzero(grads[name]) > 0.5 * grads[name].size
    stepped = {name: value - 0.05 * grads[name] / (np.abs(grads[name]).max() + 1e-12) for name, value in params.items()}
    assert tl.forward_backward(stepped, xb, yb, config, grad=False)[0] < loss


# Model -------------------------------------------------------------------------------------


def test_backward_pass_matches_finite_differences():
    config = tl.ModelConfig(width=6, context=3, embed=4)
    rng = np.random.default_rng(4)
    params = {name: value.astype(np.float64) for name, value in tl.init_params(config, rng).items()}
    params = {name: value + 0.1 * rng.standard_normal(value.shape) for name, value in params.items()}  # biases too
    x = rng.integers(0, 256, size=(7, config.context))
    y = rng.integers(0, 256, size=7)
    _, grads = tl.forward_backward(params, x, y, config)
    eps = 1e-6
    for name, value in params.items():
        indices = [tuple(int(i) for i in np.unravel_index(k, value.shape)) for k in rng.choice(value.size, 12)]
        if name == "emb":  # rows the batch uses, where the gradient is not trivially zero
            indices = [(int(x[0, 1]), 2), (int(x[3, 0]), 0), (int(x[6, 2]), 3)]
        for index in indices:
            saved = value[index]
            value[index] = saved + eps
            up = tl.forward_backward(params, x, y, config, grad=False)[0]
            value[index] = saved - eps
            down = tl.forward_backward(params, x, y, config, grad=False)[0]
            value[index] = saved
            assert grads[name][index] == pytest.approx((up - down) / (2 * eps), rel=1e-5, abs=1e-9), (name, index)


def test_non_embedding_parameter_count_matches_the_arrays():
    config = tl.ModelConfig(width=24, context=5, embed=3)
    params = tl.init_params(config, np.random.default_rng(0))
    assert config.n_params == sum(value.size for name, value in params.items() if name != "emb")


def test_a_short_run_beats_the_unigram_baseline(corpus, trained):
    unigram = tl.unigram_loss(corpus)
    untrained = tl.evaluate(
        tl.init_params(trained.config, np.random.default_rng(0)), corpus.valid, trained.config, max_tokens=8_000
    )
    assert 2.5 < unigram < np.log(256)  # source code: far from uniform over bytes
    assert trained.final_loss < unigram < untrained
    assert np.isfinite(trained.train_loss)


def test_ptq_loss_rises_as_bits_fall(corpus, trained):
    losses = {
        bits: tl.evaluate(trained.params, corpus.valid, trained.config, weight_bits=bits, max_tokens=8_000)
        for bits in (8, 4, 3, 2)
    }
    assert losses[8] == pytest.approx(trained.final_loss, abs=0.01)  # 8-bit RTN is nearly lossless
    assert trained.final_loss - 0.005 < losses[8] < losses[4] < losses[3] < losses[2]


def test_quantization_aware_training_evaluates_only_lower_ptq_bits(corpus):
    result = tl.train(tl.ModelConfig(width=8, context=4, embed=4, bits=4), corpus, 2_560, eval_tokens=1_000)
    assert sorted(result.ptq_losses) == [3.0]
    assert result.n_tokens == 2_560
    assert result.steps == 20


# Command line and payloads -----------------------------------------------------------------


def test_dry_run_produces_payloads_the_api_accepts():
    out = io.StringIO()
    argv = ["--dry-run", "--quick", "--widths", "8,16", "--bits", "16,4", "--tokens", "3000", "--eval-tokens", "1000"]
    payloads = tl.main(argv, out=out)
    assert len(payloads) == 4
    assert len({p["external_id"] for p in payloads}) == 4
    assert (
        tl.main(argv[:-2] + ["--eval-tokens", "1000"], out=io.StringIO())[0]["external_id"]
        == (
            payloads[0]["external_id"]  # seeded and stable: logging again updates the same runs
        )
    )
    for payload in payloads:
        for name in ("n_params", "n_tokens", "weight_bits", "activation_bits", "kv_bits", "final_loss", "family"):
            assert name in payload
        assert payload["family"] == "tiny-lm"
        assert payload["kv_bits"] == 16
        assert payload["weight_bits"] == payload["activation_bits"]
        assert 0 < payload["final_loss"] < np.log(256) + 1
        assert all(e["post_train_bits"] < payload["weight_bits"] for e in payload["evaluations"])
        assert payload["metadata"]["seed"] == 0
    assert {len(p["evaluations"]) for p in payloads if p["weight_bits"] == 16} == {len(tl.PTQ_BITS)}
    assert len(out.getvalue().splitlines()) == 1 + 4 + 1  # header, one line per run, total


def test_payloads_pass_the_servers_run_serializer():
    from runs.api.serializers import RunSerializer

    payloads = tl.main(
        ["--dry-run", "--widths", "8", "--bits", "8", "--tokens", "1000", "--eval-tokens", "500"], out=io.StringIO()
    )
    serializer = RunSerializer(data=payloads[0])
    assert serializer.is_valid(), serializer.errors


def test_logging_needs_a_url_and_key(monkeypatch):
    monkeypatch.delenv("BITSCALE_URL", raising=False)
    monkeypatch.delenv("BITSCALE_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="--api-key"):
        tl.main(["--quick"], out=io.StringIO())


def test_each_run_line_shows_its_place_in_the_sweep_and_the_time_left():
    out = io.StringIO()
    argv = ["--dry-run", "--widths", "8,16", "--bits", "16,4", "--tokens", "3000", "--eval-tokens", "1000"]

    tl.main(argv, out=out)

    runs = out.getvalue().splitlines()[1:-1]
    assert [line.split("]")[0] for line in runs] == ["[1/4", "[2/4", "[3/4", "[4/4"]
    assert all(re.search(r"\(~(\d+m\d\ds|\d+s) left\)$", line) for line in runs[:-1])
    assert "left)" not in runs[-1]


def test_time_left_extrapolates_from_the_cost_done():
    assert tl.time_left(30.0, done=1.0, total=4.0) == "~1m30s"
    assert tl.time_left(10.0, done=1.0, total=2.0) == "~10s"
    assert tl.time_left(10.0, done=2.0, total=2.0) == ""
    small, large = tl.run_cost(tl.ModelConfig(width=32), 1000, 100), tl.run_cost(tl.ModelConfig(width=256), 1000, 100)
    assert large > small
