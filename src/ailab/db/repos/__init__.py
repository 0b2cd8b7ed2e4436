"""Every query of AI-Lab, one module per area; functions take an ``AsyncSession`` and return rows."""
