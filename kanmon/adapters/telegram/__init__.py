"""The Telegram adapter (``gated adapter telegram``; ``pip install 'kanmon[telegram]'``): python-telegram-bot with
long polling in (:mod:`.adapter`, :mod:`.inbound`), gated's replies out (:mod:`.server`, :mod:`.outbound`,
:mod:`.split`), the typing indicator (:mod:`.chat_action`)."""
