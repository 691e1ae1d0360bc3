"""Where a study lives and how its storage is opened: one rule for every command that reads or writes a study.

A study named S lives in the folder `<out>/S/` (`--out`, default `reports`): its default storage is the
SQLite file `<out>/S/study.db`, the training states of its running trials are under `<out>/S/states/`, and
its report is written there. `--storage URL` puts the study elsewhere (PostgreSQL for many machines); the
folder still holds the states and the report. This module imports Optuna and SQLAlchemy, never torch.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from resnet_bench.errors import BadInputError
from resnet_bench.search.config import STUDY_NAME_RULE, StudyConfig, is_study_name, load_study_file

REPORTS = Path("reports")  # the default --out
STUDY_DB = "study.db"
DEFAULT_HEARTBEAT_SECONDS = 30  # a killed worker's trial is failed and retried after twice this
# The study's attributes in the storage (a contract with stored studies: never rename them).
FINGERPRINT, FINGERPRINT_PARTS, STUDY_FILE = "fingerprint", "fingerprint_parts", "study_file"
# The precision the study's `auto` recipe trains in, resolved once (search/study.py: study_precision).
PRECISION = "precision"
SETTINGS_HISTORY = "settings_history"  # [{at, n_trials, constraints, reference_point, ...}], one per change
# The layout of what a study stores (its attributes and its trials' records), so that a release knows what it reads.
# 1: every study made before the version was stored (2026-12-06); its fingerprint parts may lack the recipe, the
#    seed, the validation size and the image size (the stored study file gives them: study.stored_conditions).
# 2: the version stored; the fingerprint parts whole.
SCHEMA_VERSION, SCHEMA_VERSION_KEY = 2, "schema_version"
POSTGRES_FIX = "pip install 'resnet-bench[postgres]'"


class StorageUnavailableError(RuntimeError):
    """A storage that exists on paper but cannot be reached now (a server down, a network, a lock): exit 1."""


@dataclass(frozen=True)
class StudyLocation:
    """Where one study lives: its storage URL, its name there, and its folder (training states, report files)."""

    storage: str  # an Optuna RDB storage URL
    name: str  # the study's name in the storage
    folder: Path  # <out>/<name>

    @property
    def states(self) -> Path:
        """Training states saved after each epoch of a running trial, for a retry to resume from."""
        return self.folder / "states"

    def make_folder(self) -> None:
        """Create the study's folder where its default SQLite file needs it (a server storage needs none yet)."""
        if self.is_default_storage:
            self.folder.mkdir(parents=True, exist_ok=True)

    @property
    def is_default_storage(self) -> bool:
        """The storage is the SQLite file in the study's folder."""
        return self.storage == sqlite_url(self.folder / STUDY_DB)


def locate_study(name: str, *, storage: str | None = None, out: str | Path | None = None) -> StudyLocation:
    """The location of study `name` under `out` (default reports/), in `storage` or its default SQLite file.

    A name that is not one safe folder name is refused (BadInputError), so that a study never leaves `out`."""
    if not is_study_name(name):
        raise BadInputError(f"study name {name!r} is not accepted; use {STUDY_NAME_RULE}")
    folder = Path(out if out is not None else REPORTS) / name
    return StudyLocation(storage=storage or sqlite_url(folder / STUDY_DB), name=name, folder=folder)


def study_to_read(study_file: str | None, *, study_name: str | None = None, storage: str | None = None,
                  out: str | Path | None = None) -> tuple[StudyConfig | None, StudyLocation]:
    """The study file given (or None) and the location of the study a reading command reads (report, confirm):
    `study_name`, else the study file's name, else the one study in `storage`, else the quickstart's."""
    config = load_study_file(study_file) if study_file else None
    if study_name or config is not None:
        name = study_name or config.name
    elif storage:
        name = only_study(storage)
    else:
        name = load_study_file(None).name
    return config, locate_study(name, storage=storage, out=out)


def study_to_write(config: StudyConfig, *, study_name: str | None = None, storage: str | None = None,
                   out: str | Path | None = None) -> StudyLocation:
    """The location of the study a writing command makes or resumes (sweep, the experiments): `study_name`, else
    the study file's name."""
    return locate_study(study_name or config.name, storage=storage, out=out)


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of a SQLite file, absolute so that workers started elsewhere find the same file."""
    return f"sqlite:///{path.resolve()}"


def safe_url(url: str) -> str:
    """A URL fit to print: the password hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: it holds no password we could find either
        return url.split("@")[-1] if "@" in url else url


def schema_version(attrs: dict[str, Any]) -> int:
    """The schema version of a stored study, from its user attributes (1: made before versions were stored)."""
    version = attrs.get(SCHEMA_VERSION_KEY, 1)
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def check_schema(attrs: dict[str, Any], name: str) -> int:
    """The study's schema version; a study written by a later release (a higher version) is refused, exit 2: this
    release would misread what it stores, or write over it in the old layout."""
    version = schema_version(attrs)
    if version > SCHEMA_VERSION:
        raise BadInputError(f"study {name!r} was written by a later release of resnet-bench (schema version "
                            f"{version}; this release reads up to {SCHEMA_VERSION}): upgrade resnet-bench to read it")
    return version


def _say_retry(retry: Callable[[optuna.Study, optuna.trial.FrozenTrial], None],
               grace: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """Optuna's retry of a trial whose worker fell silent, said on stderr (Optuna itself says nothing)."""
    def retry_and_say(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        retry(study, trial)
        sys.stderr.write(f"trial {trial.number}: its worker was silent for over {grace} s (killed, or its machine "
                         "lost): failed, and queued again to resume from its last saved epoch\n")
    return retry_and_say


def silent_workers(study: optuna.Study) -> dict[int, float]:
    """The study's running trials and the seconds since their worker's last heartbeat (trial number -> seconds),
    read from Optuna's own tables; empty for a storage without heartbeats."""
    storage = getattr(study._storage, "_backend", study._storage)  # its RDBStorage, behind Optuna's cache
    if not isinstance(storage, optuna.storages.RDBStorage) or storage.heartbeat_interval is None:
        return {}
    import sqlalchemy
    from optuna.storages._rdb import models

    with sqlalchemy.orm.Session(storage.engine) as session:
        now = session.execute(sqlalchemy.func.now()).scalar()
        rows = (session.query(models.TrialModel.number, models.TrialHeartbeatModel.heartbeat)
                .join(models.TrialHeartbeatModel, models.TrialHeartbeatModel.trial_id == models.TrialModel.trial_id)
                .filter(models.TrialModel.study_id == study._study_id,
                        models.TrialModel.state == optuna.trial.TrialState.RUNNING).all())
    if now is None:
        return {}
    now = now.replace(tzinfo=None)  # PostgreSQL's is aware, its stored heartbeats naive (as Optuna reads them)
    return {number: max(0.0, (now - beat.replace(tzinfo=None)).total_seconds()) for number, beat in rows}


def open_storage(url: str, heartbeat_seconds: int = DEFAULT_HEARTBEAT_SECONDS) -> optuna.storages.BaseStorage:
    """Optuna's RDB storage for a URL, with heartbeats: a trial whose worker died is failed and retried.

    A running trial's worker writes a heartbeat every `heartbeat_seconds`; the next worker to start a
    trial fails one silent for twice that long, and Optuna enqueues it again (at most twice), with its
    attributes, so that it resumes from its last epoch. SQLite waits up to 60 s for another worker's lock.

    A malformed URL, an unknown database or a missing driver is bad input (BadInputError, exit 2); a server
    that cannot be reached is a failure (StorageUnavailableError, exit 1), named by its URL without password.
    """
    import sqlalchemy.exc

    kwargs: dict[str, Any] = {}
    url = with_driver(url)
    if url.startswith("sqlite"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
        _check_sqlite_file(url)
    shown = safe_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = _say_retry(optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2), 2 * heartbeat_seconds)
        for attempt in range(6):
            try:
                storage = optuna.storages.RDBStorage(
                    url, heartbeat_interval=heartbeat_seconds, grace_period=2 * heartbeat_seconds,
                    heartbeat_stale_trial_callback=retry, **kwargs,
                )
                if url.startswith("sqlite") and ":memory:" not in url:  # one process only holds a memory database
                    _serialise_sqlite(storage.engine)
                return storage
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError,
                    sqlalchemy.exc.OperationalError) as exc:
                # Workers that meet an empty database at the same moment race to create Optuna's
                # tables (SQLite says "table ... already exists"); the losers find them made once the winner
                # commits. Any other operational error is a storage that cannot be reached.
                if isinstance(exc, sqlalchemy.exc.OperationalError) and "already exists" not in str(exc):
                    raise StorageUnavailableError(_unreachable(url, shown, exc)) from None
                if attempt == 5:
                    raise StorageUnavailableError(f"--storage {shown}: Optuna's tables cannot be created "
                                                  f"({type(exc).__name__})") from None
                time.sleep(0.5 * (attempt + 1))
            except (sqlalchemy.exc.ArgumentError, sqlalchemy.exc.NoSuchModuleError) as exc:
                raise BadInputError(
                    f"--storage {shown!r} is not a storage URL this machine can open ({exc}); use "
                    "sqlite:///PATH/study.db or postgresql://USER:PASSWORD@HOST/DATABASE") from None
            except ImportError as exc:
                raise BadInputError(f"--storage {shown!r} needs a database driver that is not installed "
                                    f"({exc}); for PostgreSQL: {POSTGRES_FIX}") from None
    raise AssertionError("unreachable")


POSTGRES_DRIVER = "psycopg"  # psycopg 3, what the postgres extra installs


def with_driver(url: str) -> str:
    """A plain postgresql:// URL with the driver the postgres extra installs (SQLAlchemy 2.0 would pick psycopg2,
    2.1 picks psycopg 3): the README's URL works as written on either. An explicit driver is kept."""
    if url.startswith(("postgresql://", "postgres://")):
        return f"postgresql+{POSTGRES_DRIVER}://" + url.split("://", 1)[1]
    return url


def _check_sqlite_file(url: str) -> None:
    """The SQLite file's folder exists, and the file, if there is one, is a sound database: a damaged file is named
    in one line and left untouched (checked read-only, before Optuna would write to it)."""

    path = url.removeprefix("sqlite:///")
    if not url.startswith("sqlite:///") or path == ":memory:":
        return
    if not Path(path).parent.is_dir():
        raise BadInputError(f"--storage {url!r}: the folder {str(Path(path).parent)!r} does not exist; "
                            "create it, or give another path")
    if not Path(path).is_file() or Path(path).stat().st_size == 0:
        return
    try:
        with contextlib.closing(sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)) as db:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.OperationalError:  # locked by a writer, or not readable: Optuna says what it meets
        return
    except sqlite3.DatabaseError as exc:
        verdict = str(exc)
    if verdict != "ok":
        first = next((line for line in verdict.splitlines() if not line.startswith("***")), verdict)
        raise BadInputError(f"the SQLite file {path} is damaged ({first}); it was left untouched: "
                            "restore it from a copy, or start the study in another --out")


def _unreachable(url: str, shown: str, exc: Exception) -> str:
    if url.startswith("sqlite"):
        return f"the SQLite storage {shown} cannot be opened ({str(exc).splitlines()[0]}); check the file's permissions"
    from sqlalchemy.engine import make_url

    where = make_url(url)
    host = f"{where.host or 'localhost'}{f':{where.port}' if where.port else ''}"
    return (f"the storage server at {host} ({shown}) cannot be reached: check that it runs and accepts connections "
            "from this machine, and the user, password and database in the URL")


def _serialise_sqlite(engine: Any) -> None:
    """Every SQLite transaction takes the database's write lock when it begins (BEGIN IMMEDIATE).

    Optuna hands a queued trial (a baseline, a retried trial) to one worker by reading that it waits and marking it
    running, in one transaction "for update"; SQLite ignores "for update" and, in its default deferred
    transactions, lets two workers read "waiting" before either writes, so both trained the same trial and the
    second failed with "Cannot tell a COMPLETE trial" (4 threads popping 60 queued trials took 18 twice). With the
    lock taken at the start, the second worker reads "running" and moves on. Transactions are short; a worker
    waits for the lock up to the 60 s busy timeout. This is SQLAlchemy's documented recipe for pysqlite.
    """
    import sqlalchemy

    @sqlalchemy.event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # pysqlite's own BEGIN off: the one below instead

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while Optuna made its tables reconnect with the hooks


def open_existing_storage(url: str) -> optuna.storages.BaseStorage:
    """The storage of a URL that must already exist: a SQLite file is never created by reading it."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        path = Path(url.removeprefix("sqlite:///"))
        if not path.is_file():
            raise BadInputError(f"--storage {url!r}: there is no file {str(path)!r}; run `resnet-bench sweep` "
                                "first (with the same --out and --study-name), or give the URL of an existing storage")
        _check_optuna_tables(path)
    return open_storage(url)


def _check_optuna_tables(path: Path) -> None:
    """Reading never creates or changes a storage: a SQLite file without Optuna's tables (empty, or another
    program's) is refused before Optuna would create its tables in it (checked read-only)."""

    tables: set[str] = set()
    if path.stat().st_size:
        try:
            with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.OperationalError:  # locked by a writer, or not readable: Optuna says what it meets
            return
        except sqlite3.DatabaseError:
            return  # not a database at all: open_storage names it as damaged
    if not {"studies", "version_info"} <= tables:
        what = "is empty" if not tables else f"holds other tables ({', '.join(sorted(tables)[:3])})"
        raise BadInputError(f"the SQLite file {str(path)!r} {what}, not an Optuna storage; it was left untouched: "
                            "give the storage a sweep wrote (reports/<study>/study.db)")


def study_names(storage: optuna.storages.BaseStorage) -> list[str]:
    """The names of the studies a storage holds."""
    return sorted(s.study_name for s in storage.get_all_studies())


def only_study(url: str) -> str:
    """The name of the one study a storage holds; bad input if it holds none or several."""
    names = study_names(open_existing_storage(url))
    if len(names) != 1:
        held = f"it holds {', '.join(names)}" if names else "it holds no study"
        raise BadInputError(f"--study-name is needed to choose a study in {safe_url(url)}; {held}")
    return names[0]
