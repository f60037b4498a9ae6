"""The host's command profiles (F27): loading the root-owned profiles file and the
one rule for which file is used (:mod:`app.profiles.catalog`), the profiles' runtime
options, the model price table, subscription logins and a run's allow-listed child
environment. Below every domain: imports only ``app.core`` and ``app.capability``;
the worker (``app.runner``), the API and the doctor use it, never the other way
round."""
