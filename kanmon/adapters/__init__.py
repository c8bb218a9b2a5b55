"""Channel adapters shipped with kanmon: separate processes that speak the adapter protocol (SPEC §11) over HTTP.

Each lives in a sub-package of its own, installed with an extra (``pip install 'kanmon[matrix]'``), and knows nothing
of the store: it registers with gated, posts what it receives to ``/v1/messages`` and serves ``/send``.
"""
