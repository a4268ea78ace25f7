"""``kobo serve``: the team server (PostgreSQL or SQLite + an object store).

Modules, one concept each:

* :mod:`.db` -- one SQL layer over PostgreSQL (psycopg 3) and SQLite;
  :mod:`.migrations` -- the versioned schema.
* :mod:`.accounts` -- users (argon2id), API tokens and browser sessions (SHA-256 of random
  256-bit secrets), projects and roles; :mod:`.access` -- the role x action table and the one
  FastAPI dependency that applies it.
* :mod:`.store` -- the object store (a local folder or ``s3://``), keys picked by the server;
  :mod:`.ingest` -- validation of uploaded segments and media, and the sync ledger;
  :mod:`.boardcache` -- a read-only board folder rebuilt from the ledger for the Reader;
  :mod:`.gc` -- garbage collection of the store (and the pins that make it safe).
* :mod:`.runs` -- a project's runs from the database: listings, runs table, live state, edits;
  :mod:`.ratelimit` -- the per-caller rate limit, shared by the workers through the database.
* :mod:`.app` -- the FastAPI application; :mod:`.serve` -- start-up checks and uvicorn workers;
  :mod:`.admin_cli` -- ``kobo admin`` and ``kobo serve``.

Nothing here is imported by ``import kohakuboard``.
"""
