"""Channel adapters: separate processes that bridge a chat platform to gated over the adapter protocol (SPEC §11).

An adapter knows nothing of the store: it registers with gated (``POST /v1/channels/register`` with the channel
secret), posts what its platform receives to ``/v1/messages``, and serves ``/send`` for what gated delivers. Each
platform is a sub-package with its own optional dependencies (``pip install 'kanmon[telegram]'``); what every adapter
needs is here: the client of gated's API (:mod:`kanmon.adapters.gated_client`) and the state an adapter keeps across
restarts (:mod:`kanmon.adapters.state`).
"""
