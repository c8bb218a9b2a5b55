"""The Matrix adapter (``gated adapter matrix``; ``pip install 'kanmon[matrix]'``), built on matrix-nio.

Rooms are chats (``matrix:<room id>``), threads are topics, and replies go back as notices into the thread they
answer. :mod:`.inbound` maps events to messages, :mod:`.outbound` posts replies, :mod:`.split` cuts long ones,
:mod:`.adapter` follows ``/sync``, :mod:`.gated` speaks the adapter protocol, :mod:`.server` serves gated, and
:mod:`.run` starts it all.
"""
