"""Helpers of the admin tests: a fit page as a reviewer's browser shows it, each plot in place of its <img>."""

import re
from typing import Any

PLOT_IMG = re.compile(r'<a href="[^"]+"><img src="(?P<src>[^"]+)"[^>]*></a>')


def fit_page_with_plots(client: Any, fit_id: int) -> str:
    """The fit page's HTML with every plot's SVG (fetched from its URL, as a browser does) where its <img> is."""
    page = client.get(f"/admin/fits/fit/{fit_id}/change/")
    assert page.status_code == 200

    def inline(match: re.Match[str]) -> str:
        plot = client.get(match["src"].replace("&amp;", "&"))
        assert plot.status_code == 200, match["src"]
        assert plot["Content-Type"].startswith("image/svg+xml")
        return plot.content.decode()

    return PLOT_IMG.sub(inline, page.content.decode())
