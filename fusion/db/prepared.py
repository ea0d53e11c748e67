"""Server-side prepared statements for the few statements nearly every request sends.

Postgres parses and plans every statement psycopg2 sends it, afresh each time. For the
caller's read (account, revoked session and role, under RLS) and a job's enqueue, planning
is most of what Postgres does for them: 0.43 ms of planning against 0.07 ms of execution for
the caller's read, and prepared, the four statements of an enqueue's transaction cost
Postgres 0.6 ms instead of 1.1 ms (bench/README.md, "The tenth pass").

:func:`prepare` turns a statement into a :class:`Prepared` one, once per process; executing
it (:meth:`Prepared.on`) sends ``PREPARE <name> AS ...`` the first time on each database
connection (remembered in the pooled connection's ``info``, which SQLAlchemy empties when it
replaces the connection) and then ``EXECUTE <name>(...)``, with the original statement's
parameters and their types. A prepared statement is not part of a transaction: it outlives a
rollback. Postgres plans it again when a table it reads changes; its result columns must not
change, so a prepared statement names the columns it returns (no ``*``). A migration that
changes the type of one of them makes it fail on every connection that prepared it
("cached plan must not change result type"): :func:`heal` has SQLAlchemy treat that error
as a lost connection, so the request that meets it fails and the pool's connections are
replaced, their successors preparing the statement afresh.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Engine, Executable, bindparam, event, select, text
from sqlalchemy.dialects.postgresql import psycopg2
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

# The engine's execution option that turns preparing off (fusion.db.session.Database).
OPTION = "fusion_prepared_statements"
INFO_KEY = "fusion.prepared"
_DIALECT = psycopg2.dialect()
_PARAMETER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class Prepared:
    """A statement as ``PREPARE`` (sent once per connection) and ``EXECUTE`` (every time).

    ``definition`` is the ``PREPARE`` as psycopg2 takes it with parameters (none): a literal
    ``%`` in it is doubled."""

    name: str
    definition: str
    execute: Executable
    plain: Executable  # the statement itself, for an engine that does not prepare

    def on(self, session: Session) -> Executable:
        """The ``EXECUTE`` to run on ``session``'s connection (its transaction begun), the
        statement prepared there first if it is not yet; the plain statement where the
        engine was made not to prepare (:class:`fusion.db.session.Database`)."""
        connection = session.connection()
        if not connection.get_execution_options().get(OPTION, True):
            return self.plain
        done: set[str] = connection.info.setdefault(INFO_KEY, set())
        if self.name not in done:
            connection.exec_driver_sql(self.definition)
            done.add(self.name)
        return self.execute


def prepare(statement: ClauseElement, *returns: Any) -> Prepared:
    """``statement`` as a prepared statement, named after its SQL (two versions of the hub on
    one database never share a name for different SQL). ``returns``: the ORM entity its rows
    are read into and the columns beside it, matched by column name (as
    ``select(*returns).from_statement``, which wants an entity first); without them, rows
    come back as the statement's columns."""
    compiled = cast(SQLCompiler, statement.compile(dialect=_DIALECT))
    sql = str(compiled)
    names: list[str] = []

    def positional(found: re.Match[str]) -> str:
        if found.group(1) not in names:
            names.append(found.group(1))
        return f"${names.index(found.group(1)) + 1}"

    # Still in the driver's paramstyle: its literal % stay doubled (exec_driver_sql formats).
    body = _PARAMETER.sub(positional, sql)
    name = "fusion_" + hashlib.sha256(sql.encode()).hexdigest()[:20]
    binds = [bindparam(n, type_=compiled.binds[n].type) for n in names]
    arguments = ", ".join(f":{n}" for n in names)
    execute = text(f"EXECUTE {name}({arguments})").bindparams(*binds)
    definition = f"PREPARE {name} AS {body}"
    if not returns:
        return Prepared(name, definition, execute, cast(Executable, statement))
    rows: Any = statement  # a SELECT or a statement with RETURNING
    read = select(*returns)
    return Prepared(name, definition, read.from_statement(execute), read.from_statement(rows))


_FEATURE_NOT_SUPPORTED = "0A000"  # the SQLSTATE of "cached plan must not change result type"


def heal(engine: Engine) -> None:
    """Replace ``engine``'s connections when a prepared statement's result type changed under
    it (a migration): each of them would fail on that statement until it is replaced."""
    event.listen(engine, "handle_error", _changed_result_type)


def _changed_result_type(context: ExceptionContext) -> None:
    error = context.original_exception
    if getattr(error, "pgcode", None) == _FEATURE_NOT_SUPPORTED and "cached plan" in str(error):
        context.is_disconnect = True  # this connection is dropped, the pool's others recycled
