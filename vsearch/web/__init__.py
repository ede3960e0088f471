"""``vsearch serve``: the search page and JSON API (``app``) on one store and model
(``service``), behind the checks every request passes (``guard``: host names, token, upload
size, security headers); Range requests (``ranges``), files served only as indexed (``media``),
the OpenAPI document (``openapi``), and the server that runs them (``server``)."""
