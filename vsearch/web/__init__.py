"""``vsearch serve``: the search page and JSON API (``app``), Range requests (``ranges``), and
the server that runs them (``server``)."""
