"""fusion.db.prepared: a statement as PREPARE and EXECUTE, its parameters numbered once each
in order of first use, literal percent signs doubled for the driver, and the same answer as
the statement."""

from __future__ import annotations

import uuid

from sqlalchemy import Integer, bindparam, text

from fusion.db.prepared import prepare
from fusion.db.session import Database

# Postgres infers a prepared statement's parameter types from where they stand (a column, a
# cast): bare ones would be "unknown".
STATEMENT = text(
    "SELECT CAST(:a AS integer) + CAST(:b AS integer) AS total, CAST(:a AS integer) AS a,"
    " 'x%' AS literal"
).bindparams(bindparam("a", type_=Integer), bindparam("b", type_=Integer))


def test_parameters_are_numbered_in_order_of_first_use_and_percent_signs_stay_doubled() -> None:
    prepared = prepare(STATEMENT)
    assert prepared.name.startswith("fusion_")
    assert prepared.definition == (
        f"PREPARE {prepared.name} AS SELECT CAST($1 AS integer) + CAST($2 AS integer) AS total,"
        " CAST($1 AS integer) AS a, 'x%%' AS literal"
    )
    assert str(prepared.execute) == f"EXECUTE {prepared.name}(:a, :b)"
    assert prepare(STATEMENT).name == prepared.name  # named after its SQL, in any process


def test_executed_by_name_it_answers_as_the_statement_does(database: Database) -> None:
    prepared = prepare(STATEMENT)
    with database.org_session(uuid.uuid4()) as session:
        assert session.execute(STATEMENT, {"a": 2, "b": 3}).one() == (5, 2, "x%")
        row = session.execute(prepared.on(session), {"a": 2, "b": 3}).one()
        assert row._asdict() == {"total": 5, "a": 2, "literal": "x%"}
        assert session.execute(prepared.on(session), {"a": 7, "b": 1}).one() == (8, 7, "x%")
