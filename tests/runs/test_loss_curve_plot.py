"""The run page's loss plot draws final values honestly (runs.plots): `final_loss`, `ptq_loss/...` and values logged
without a step are markers at the curve's last step, not step 0 of the training curve; and a forecast's band."""

import math
import xml.etree.ElementTree as ET

from runs.plots import final_markers, loss_curves_svg, split_final_values

CURVE = [(step, 7.0 - step / 100) for step in range(1, 301)]


def test_final_values_are_markers_at_the_last_step_not_points_at_step_0():
    curves = {"train_loss": CURVE, "final_loss": [(0, 3.1)], "ptq_loss/4": [(0, 3.3)], "val_loss": [(0, 4.2)]}

    training, finals = split_final_values(curves)

    assert list(training) == ["train_loss"]
    assert set(finals) == {"final_loss", "ptq_loss/4", "val_loss"}  # val_loss: logged only without a step
    assert final_markers(curves) == {"final_loss": (300, 3.1), "ptq_loss/4": (300, 3.3), "val_loss": (300, 4.2)}


def test_a_curve_of_its_own_at_step_0_stays_a_curve_when_nothing_goes_further():
    curves = {"loss": [(0, 5.0)]}

    assert split_final_values(curves) == ({"loss": [(0, 5.0)]}, {})


def test_the_plot_labels_final_values_and_draws_the_forecast_with_its_band():
    curves = {"train_loss": CURVE, "final_loss": [(0, 3.1)], "ptq_loss/4": [(0, math.nan)]}
    forecast = {"loss": 3.05, "interval": [3.0, 3.1], "level": 0.95, "at_step": 600, "last_step": 300}

    svg = loss_curves_svg(curves, forecast=forecast, note="")
    text = " ".join(t.text or "" for t in ET.fromstring(svg).iter() if t.text)

    assert "final_loss (final)" in text
    assert "ptq_loss/4" not in text  # nothing finite to draw: counted in the note instead
    assert "1 NaN/Infinity value(s) not drawn" in text
    assert "forecast 3.050 (95%: 3.000-3.100)" in text


def test_the_reason_for_no_forecast_is_written_under_the_title():
    svg = loss_curves_svg({"loss": CURVE}, note="no forecast: no decay seen in the family yet")

    assert "no forecast: no decay seen in the family yet" in svg


def test_a_steep_start_is_cut_off_the_y_axis_so_the_end_and_the_forecast_band_stay_readable():
    from runs.plots import _y_limits

    falling = [(step, 3.0 + 7.0 * math.exp(-step / 20)) for step in range(1, 1001)]  # 10 nats down to 3
    forecast = {"loss": 2.95, "interval": [2.9, 3.0], "level": 0.95, "at_step": 2000, "last_step": 1000}

    low, high, hidden = _y_limits({"loss": falling}, {}, forecast)
    svg = loss_curves_svg({"loss": falling}, forecast=forecast)

    later = [v for s, v in falling if s >= 50]
    assert low < 2.9  # the interval's low end
    assert max(later) < high < 4.0  # every point past the first 5% of steps, and not the start at 10 nats
    assert hidden == sum(1 for _, v in falling if v > high)
    assert hidden > 0
    assert f"y-axis cut at {high:.2f}: {hidden} early point(s) above it" in svg


def test_a_gentle_curve_keeps_its_whole_range():
    from runs.plots import _y_limits

    assert _y_limits({"loss": CURVE}, {}, None) is None
