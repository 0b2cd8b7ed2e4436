"""Users, passwords, access and API tokens, and the login throttle."""
