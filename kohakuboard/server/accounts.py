"""Users, passwords, API tokens, browser sessions, projects and roles.

* Passwords: argon2id (``argon2-cffi``'s defaults), verified in constant time by argon2.
* Tokens and sessions: 256-bit random secrets (``secrets.token_urlsafe(32)``), prefixed
  ``kb_`` (API) or kept in a cookie (session). Only their SHA-256 is stored; a lookup selects
  the row by that hash and compares it again with :func:`hmac.compare_digest`. The secret is
  returned once, never logged.
* There is no default admin and no sign-up: accounts come from ``kobo admin``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from .db import ConflictError, Database, Tx
from .errors import (
    AccountError,
    InvalidNameError,
    NameTakenError,
    NotAuthenticatedError,
    PasswordError,
    TooManyAttemptsError,
)

ROLES = ("viewer", "editor", "owner")
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
TOKEN_PREFIX = "kb_"
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
SESSION_SECONDS = 7 * 24 * 3600
# Login throttling: at most this many failures per name or per address in the window.
MAX_FAILURES = 10
FAILURE_WINDOW = 15 * 60.0


@dataclass(frozen=True)
class User:
    id: int
    name: str
    is_admin: bool


def check_name(what: str, name: str) -> str:
    if not NAME.fullmatch(name):
        raise InvalidNameError(
            f"{what} name {name!r} is not accepted; accepted: 1 to 64 characters, letters, "
            "digits, '_', '.', '-', starting with a letter or digit"
        )
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not accepted; accepted: {', '.join(ROLES)}")
    return role


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def _hasher():  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    return PasswordHasher()  # argon2id, the library's current recommended parameters


def hash_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise PasswordError(
            f"the password has {len(password)} characters; accepted: {MIN_PASSWORD} to "
            f"{MAX_PASSWORD}"
        )
    return str(_hasher().hash(password))


# A hash to verify against when the user does not exist, so that the time a failed login
# takes does not tell which names exist.
_DUMMY: list[str] = []


def _verify(stored: str | None, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    if stored is None:
        if not _DUMMY:
            _DUMMY.append(_hasher().hash(secrets.token_hex(16)))
        stored = _DUMMY[0]
        password = password + "\x00never"
    try:
        return bool(_hasher().verify(stored, password))
    except (VerificationError, InvalidHashError):
        return False


# -- users ------------------------------------------------------------------------------------
def create_user(db: Database, name: str, password: str | None, *, admin: bool = False) -> User:
    check_name("user", name)
    hashed = hash_password(password) if password is not None else None
    try:
        with db.transaction() as tx:
            uid = tx.value(
                "INSERT INTO users (name, password_hash, is_admin, created_at) "
                "VALUES (?, ?, ?, ?) RETURNING id",
                (name, hashed, int(admin), time.time()),
            )
    except ConflictError:
        raise NameTakenError(f"a user named {name!r} exists already") from None
    return User(int(uid), name, admin)


def get_user(tx: Tx, name: str) -> User:
    row = tx.one("SELECT id, name, is_admin FROM users WHERE name = ? AND disabled = 0", (name,))
    if row is None:
        raise AccountError(f"no user named {name!r}; `kobo admin create-user {name}` makes one")
    return User(int(row[0]), str(row[1]), bool(row[2]))


def set_password(db: Database, name: str, password: str) -> None:
    hashed = hash_password(password)
    with db.transaction() as tx:
        user = get_user(tx, name)
        tx.execute("UPDATE users SET password_hash = ? WHERE id = ?", (hashed, user.id))
        # a new password ends every browser session of the user
        tx.execute(
            "UPDATE tokens SET revoked_at = ? WHERE user_id = ? AND kind = 'session' "
            "AND revoked_at IS NULL",
            (time.time(), user.id),
        )


def login(db: Database, name: str, password: str, address: str) -> User:
    """The user if ``password`` is right; :class:`NotAuthenticatedError` otherwise, and
    :class:`TooManyAttemptsError` after :data:`MAX_FAILURES` failures for that name or that
    address within :data:`FAILURE_WINDOW` seconds (counted in the database: every worker
    sees them)."""
    now = time.time()
    with db.transaction(write=False) as tx:
        failures = tx.value(
            "SELECT COUNT(*) FROM login_failures WHERE at > ? AND (name = ? OR address = ?)",
            (now - FAILURE_WINDOW, name[:64], address[:64]),
        )
        row = tx.one(
            "SELECT id, name, is_admin, password_hash FROM users WHERE name = ? AND disabled = 0",
            (name,),
        )
    if int(failures or 0) >= MAX_FAILURES:
        raise TooManyAttemptsError(
            f"too many failed logins for this name or address; try again in "
            f"{int(FAILURE_WINDOW // 60)} minutes"
        )
    ok = _verify(row[3] if row is not None else None, password)
    if not ok or row is None:
        with db.transaction() as tx:
            tx.execute(
                "INSERT INTO login_failures (name, address, at) VALUES (?, ?, ?)",
                (name[:64], address[:64], now),
            )
            tx.execute("DELETE FROM login_failures WHERE at < ?", (now - FAILURE_WINDOW,))
        raise NotAuthenticatedError("wrong user name or password")
    return User(int(row[0]), str(row[1]), bool(row[2]))


# -- tokens and sessions ----------------------------------------------------------------------
def _new_secret(tx: Tx, user: User, kind: str, name: str, expires: float | None) -> str:
    secret = (TOKEN_PREFIX if kind == "api" else "") + secrets.token_urlsafe(32)
    tx.execute(
        "INSERT INTO tokens (user_id, kind, name, hash, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (user.id, kind, name, token_hash(secret), time.time(), expires),
    )
    return secret


def create_token(db: Database, user_name: str, label: str = "") -> tuple[int, str]:
    """A new API token of ``user_name``: ``(token id, the secret)``; the secret is not stored."""
    with db.transaction() as tx:
        user = get_user(tx, user_name)
        secret = _new_secret(tx, user, "api", label or "api", None)
        tid = tx.value("SELECT id FROM tokens WHERE hash = ?", (token_hash(secret),))
    return int(tid), secret


def create_session(db: Database, user: User) -> str:
    with db.transaction() as tx:
        return _new_secret(tx, user, "session", "browser", time.time() + SESSION_SECONDS)


def revoke_token(db: Database, token_id: int) -> None:
    with db.transaction() as tx:
        changed = tx.execute(
            "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
            (time.time(), token_id),
        )
    if not changed:
        raise AccountError(
            f"no active token with id {token_id}; `kobo admin list-tokens` lists them"
        )


def revoke_secret(db: Database, secret: str) -> None:
    with db.transaction() as tx:
        tx.execute(
            "UPDATE tokens SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL",
            (time.time(), token_hash(secret)),
        )


def list_tokens(
    db: Database, user_name: str | None = None
) -> list[tuple[int, str, str, str, float, bool]]:
    """``(id, user, kind, label, created_at, active)`` of every API token (of one user)."""
    sql = (
        "SELECT t.id, u.name, t.kind, t.name, t.created_at, t.revoked_at FROM tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.kind = 'api'"
    )
    params: tuple[str, ...] = ()
    if user_name is not None:
        sql += " AND u.name = ?"
        params = (user_name,)
    with db.transaction(write=False) as tx:
        rows = tx.all(sql + " ORDER BY t.id", params)
    return [(int(r[0]), r[1], r[2], r[3], float(r[4]), r[5] is None) for r in rows]


def user_for_secret(tx: Tx, secret: str, kind: str) -> User:
    """The user a token or session secret belongs to; :class:`NotAuthenticatedError` if it
    is unknown, revoked or expired."""
    digest = token_hash(secret)
    row = tx.one(
        "SELECT t.hash, t.expires_at, t.revoked_at, u.id, u.name, u.is_admin FROM tokens t "
        "JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND t.kind = ? AND u.disabled = 0",
        (digest, kind),
    )
    # the index lookup found a row by equality; compare again in constant time anyway
    if row is None or not hmac.compare_digest(str(row[0]), digest):
        raise NotAuthenticatedError("unknown or revoked token")
    if row[2] is not None or (row[1] is not None and float(row[1]) < time.time()):
        raise NotAuthenticatedError("this token was revoked or has expired")
    return User(int(row[3]), str(row[4]), bool(row[5]))


# -- projects and roles -----------------------------------------------------------------------
def create_project(db: Database, name: str, owner: str) -> int:
    check_name("project", name)
    try:
        with db.transaction() as tx:
            user = get_user(tx, owner)
            pid = tx.value(
                "INSERT INTO projects (name, created_at) VALUES (?, ?) RETURNING id",
                (name, time.time()),
            )
            tx.execute(
                "INSERT INTO grants (project_id, user_id, role) VALUES (?, ?, 'owner')",
                (pid, user.id),
            )
    except ConflictError:
        raise NameTakenError(f"a project named {name!r} exists already") from None
    return int(pid)


def project_id(tx: Tx, name: str) -> int:
    pid = tx.value("SELECT id FROM projects WHERE name = ?", (name,))
    if pid is None:
        raise AccountError(f"no project named {name!r}; `kobo admin create-project` makes one")
    return int(pid)


def grant(db: Database, project: str, user_name: str, role: str) -> None:
    check_role(role)
    with db.transaction() as tx:
        pid = project_id(tx, project)
        user = get_user(tx, user_name)
        tx.execute(
            "INSERT INTO grants (project_id, user_id, role) VALUES (?, ?, ?) "
            "ON CONFLICT (project_id, user_id) DO UPDATE SET role = excluded.role",
            (pid, user.id, role),
        )


def revoke_role(db: Database, project: str, user_name: str) -> None:
    with db.transaction() as tx:
        pid = project_id(tx, project)
        user = get_user(tx, user_name)
        tx.execute("DELETE FROM grants WHERE project_id = ? AND user_id = ?", (pid, user.id))


def role_of(tx: Tx, user: User, project: str) -> tuple[int, str | None]:
    """``(project id, the user's role there or None)``; unknown project: NotFound-style
    :class:`AccountError`."""
    row = tx.one(
        "SELECT p.id, g.role FROM projects p LEFT JOIN grants g "
        "ON g.project_id = p.id AND g.user_id = ? WHERE p.name = ?",
        (user.id, project),
    )
    if row is None:
        raise AccountError(f"no project named {project!r}")
    return int(row[0]), row[1]


def projects_of(db: Database, user: User) -> list[dict[str, object]]:
    """The projects ``user`` may see (all of them for an admin), with role and board counts."""
    with db.transaction(write=False) as tx:
        rows = tx.all(
            "SELECT p.name, g.role, (SELECT COUNT(*) FROM boards b WHERE b.project_id = p.id), "
            "(SELECT COUNT(*) FROM boards b WHERE b.project_id = p.id AND b.status = 'running') "
            "FROM projects p LEFT JOIN grants g ON g.project_id = p.id AND g.user_id = ? "
            "ORDER BY p.name",
            (user.id,),
        )
    return [
        {"name": r[0], "role": r[1] or "admin", "boards": int(r[2]), "running": int(r[3])}
        for r in rows
        if r[1] is not None or user.is_admin
    ]


def check_login_input(name: str, password: str) -> None:
    if not name or len(name) > 64 or not password or len(password) > MAX_PASSWORD:
        raise NotAuthenticatedError("wrong user name or password")
