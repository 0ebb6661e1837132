"""MERLION lab scripts (``diagnosis``, ``critic_check``); their notes: ``README.md`` here."""
