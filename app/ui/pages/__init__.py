"""The UI's pages, one module per page family, each with its own ``router``
(listed one by one in ``app/main.py``).

Pages only read: they call the domain services and stores directly and render
HTML (``app.ui.page_kit``). Every change is made by the page's JavaScript through
the JSON API with the session's CSRF token (``X-CSRF-Token``), so the API's
validation, scopes, audit and refusal records apply to the UI unchanged. Every
``/ui/...`` route needs a login session (``UiSession``); only ``GET /`` and the
login page's assets answer without one (``app.ui.public``, ``PUBLIC_ROUTES`` in
``app/main.py``). A page never calls another router's handler: what a page and
an API route both show is a domain function both call."""
