"""Usage per user, API token and model (counted in memory, stored in batches), and budgets on it."""
