"""The Telegram adapter (``gated adapter telegram``; ``pip install 'kanmon[telegram]'``): python-telegram-bot with
long polling in (:mod:`.adapter`, :mod:`.inbound`), gated's replies out (:mod:`.server`, :mod:`.outbound`,
:mod:`.split`), the typing indicator (:mod:`.chat_action`)."""

import os

# python-telegram-bot 22 gives time periods (RetryAfter.retry_after, durations) as timedelta when this is set, and
# warns on every access otherwise; the adapter reads both forms (outbound.retry_after_seconds).
os.environ.setdefault("PTB_TIMEDELTA", "true")
