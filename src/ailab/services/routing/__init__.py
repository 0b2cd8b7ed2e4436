"""Model aliases and routing: a public name over several deployments, with retries, cool-downs and
fallbacks (``router.py``), read from the models file (``store.py``, ``config.py``), kept current and
edited by admins (``service.py``), cool-downs shared through Redis (``cooldowns.py``)."""
