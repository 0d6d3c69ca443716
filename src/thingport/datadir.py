"""The data directory: owner-only, with every file Thingport keeps there owner-only too.

It holds the master key, the operator token and the SQLite database (with its WAL, shared-memory
and journal files), each a secret or a way to one, and the server's lock. The directory is created
0700 and each file 0600 whatever the process umask; one that others can write is refused, since
whoever can write there can replace the master key or the database. SQLite creates the database
0644 and gives its WAL, SHM and journal the database's mode, so the database file is created here
first, 0600. Files an older version left readable are made owner-only at start.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

from sqlalchemy import make_url

from thingport.settings import Settings

log = logging.getLogger(__name__)

#: What SQLite keeps beside a database file.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
#: Files Thingport creates in the data directory besides the database.
OWN_FILES = ("master.key", "master.tmp", "operator.token", "server.lock")


class UnsafeDataDir(SystemExit):
    """The data directory is writable by group or others: Thingport does not start on it.

    A :class:`SystemExit`, so every command that opens the data directory stops with this one message
    (the server, ``init`` and the operator commands alike) rather than a traceback.
    """


def prepare(settings: Settings) -> None:
    """Create the data directory owner-only or check the one there, and make its files owner-only."""
    directory = settings.data_dir
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)  # the umask may have taken bits the mode asked for: set it exactly
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeDataDir(
            f"thingport: the data directory {directory} is writable by group or others (mode {mode:04o}), so they "
            f"could replace its master key or database. Make it owner-only: chmod 700 {directory}")
    for name in OWN_FILES:
        owner_only(directory / name)
    database = sqlite_file(settings)
    if database is not None:
        create_owner_only(database)
        for companion in ("", *SQLITE_COMPANIONS):
            owner_only(Path(f"{database}{companion}"))


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database file, when the database is one (not PostgreSQL, not in memory)."""
    url = make_url(settings.db_url)
    if not url.drivername.startswith("sqlite") or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def create_owner_only(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists (an empty file is an empty SQLite database)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def owner_only(path: Path) -> None:
    """Take group's and others' bits off ``path`` if it exists."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        try:
            os.chmod(path, mode & 0o700)
        except OSError as exc:  # not ours, or on a read-only mount: the operator's choice, said once
            log.warning("%s is readable by group or others (%04o) and could not be changed: %s", path, mode, exc)
            return
        log.warning("made %s owner-only (it was %04o)", path, mode)
