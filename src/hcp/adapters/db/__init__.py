"""Persistence on SQLAlchemy 2: SQLite by default, PostgreSQL (psycopg 3) at scale."""
