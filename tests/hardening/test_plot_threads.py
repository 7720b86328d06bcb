"""Plots rendered on several threads at once (gunicorn's threads in one web process) come out as they do alone:
matplotlib's style settings are global to the process, so plotkit lets one thread at a time set them."""

import threading

import pytest

from plotkit import add_note, axes_of, new_figure, render_svg


def _plot(salt: str) -> str:
    fig = new_figure()
    for ax in axes_of(fig, ncols=2):
        ax.plot(range(200), [i**0.5 for i in range(200)], label="loss")
        ax.set_title(f"plot {salt}")
        add_note(ax, "a note")
        ax.legend()
    return render_svg(fig, salt=salt)


@pytest.mark.slow
def test_plots_rendered_on_many_threads_equal_those_rendered_alone():
    salts = [f"plot-{i}" for i in range(8)]
    alone = {salt: _plot(salt) for salt in salts}
    together: dict[str, list[str]] = {salt: [] for salt in salts}

    def render(salt: str) -> None:
        for _ in range(4):
            together[salt].append(_plot(salt))

    threads = [threading.Thread(target=render, args=(salt,)) for salt in salts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for salt in salts:
        assert together[salt] == [alone[salt]] * 4, salt
