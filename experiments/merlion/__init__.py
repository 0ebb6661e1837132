"""MERLION lab scripts (``diagnosis``, ``critic_check``; shared: ``common``); their notes:
``README.md`` here."""
