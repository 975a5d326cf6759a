"""A local reveal and leaderboard server speaking the hackathon42 protocol (FastAPI, SQLite)."""
