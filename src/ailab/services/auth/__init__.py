"""Users, passwords, sessions' tokens and API tokens, and the login throttle."""
