"""Domain logic shared by the API and the CLI; imports neither FastAPI nor Typer."""
