"""Model instances from hand-written SQL, for the few statements every API request runs.

Compiling an ORM query (resolving lookups, joins, the select list, the ordering) costs more CPU than PostgreSQL
spends running a lookup by a unique key; the key lookup of every request and the MLflow run read of every MLflow
call are written once as SQL here instead (docs/benchmarks.md, "Server CPU per logged run"). What comes back is
what the ORM would build: each column through the field's own database converters, the instance through
`Model.from_db` (so it is marked as loaded from the database and saves as an update).
"""

import functools
from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from django.db import connection, models
from django.db.backends.utils import CursorWrapper

M = TypeVar("M", bound=models.Model)
Converter = Callable[[Any, Any, Any], Any]


@functools.cache
def _fields(model: type[models.Model]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(attnames, quoted column names) of the model's concrete fields, in Model.__init__'s order."""
    fields = model._meta.concrete_fields
    quote = connection.ops.quote_name
    return tuple(f.attname for f in fields), tuple(quote(f.column) for f in fields)


@functools.cache
def _converters(model: type[models.Model], vendor: str) -> tuple[tuple[int, tuple[Converter, ...], Any], ...]:
    """Per column position, the converters the ORM applies to it on this database (e.g. JSON text to data)."""
    table = model._meta.db_table
    found = []
    for position, field in enumerate(model._meta.concrete_fields):
        column = field.get_col(table)
        converters = tuple(connection.ops.get_db_converters(column) + column.get_db_converters(connection))
        if converters:
            found.append((position, converters, column))
    return tuple(found)


def cursor() -> CursorWrapper:
    """The cursor for statements written as SQL that every request runs: on PostgreSQL it binds on the server, so
    psycopg prepares a statement from its second run on a connection (config.db.base.PREPARE_THRESHOLD) and
    PostgreSQL no longer parses and plans it per call; elsewhere Django's own cursor."""
    prepared = getattr(connection, "prepared_cursor", None)
    return prepared() if prepared is not None else connection.cursor()


def select_list(model: type[models.Model], alias: str) -> str:
    """The model's columns as a SELECT list, qualified by `alias`."""
    return ", ".join(f"{alias}.{column}" for column in _fields(model)[1])


def width(model: type[models.Model]) -> int:
    """How many columns `select_list(model, ...)` selects."""
    return len(_fields(model)[0])


def instance(model: type[M], values: Sequence[Any]) -> M:
    """The instance the ORM would build from one row of `select_list(model, ...)`."""
    attnames, _ = _fields(model)
    row = list(values)
    for position, converters, expression in _converters(model, connection.vendor):
        for convert in converters:
            row[position] = convert(row[position], expression, connection)
    return model.from_db(connection.alias, attnames, row)


def table(model: type[models.Model]) -> str:
    """The model's table name, quoted."""
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def _update_sql(model: type[models.Model], names: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    fields = tuple(cast("models.Field[Any, Any]", model._meta.get_field(name)) for name in names)
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(str(field.column))} = %s" for field in fields)
    pk = quote(str(cast("models.Field[Any, Any]", model._meta.pk).column))
    return f"UPDATE {table(model)} SET {assignments} WHERE {pk} = %s", fields  # noqa: S608


def update(instance: models.Model, fields: Sequence[str]) -> None:
    """`instance.save(update_fields=fields)` as one statement written once per set of fields: each value through
    the field's own `pre_save` (auto_now) and `get_db_prep_save`, as the ORM does; no signals are sent (the models
    saved this way have no receivers)."""
    sql, field_objects = _update_sql(type(instance), tuple(sorted(set(fields))))
    values = [field.pre_save(instance, False) for field in field_objects]
    params = [field.get_db_prep_save(value, connection) for field, value in zip(field_objects, values, strict=True)]
    with cursor() as db:
        db.execute(sql, [*params, instance.pk])


@functools.cache
def _insert_sql(model: type[models.Model]) -> tuple[str, tuple[Any, ...]]:
    fields = tuple(f for f in model._meta.concrete_fields if f is not model._meta.pk)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(str(field.column)) for field in fields)
    marks = ", ".join(["%s"] * len(fields))
    pk = quote(str(cast("models.Field[Any, Any]", model._meta.pk).column))
    return f"INSERT INTO {table(model)} ({columns}) VALUES ({marks}) RETURNING {pk}", fields  # noqa: S608


def insert(instance: models.Model) -> None:
    """`instance.save()` of a new instance with an automatic primary key, as one statement written once per
    model: each value through the field's own `pre_save` (auto_now_add) and `get_db_prep_save`; the new id is set
    on the instance, which is then marked as stored. No signals are sent (the models saved this way have no
    receivers). PostgreSQL and SQLite (3.35+) answer RETURNING."""
    sql, fields = _insert_sql(type(instance))
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with cursor() as db:
        db.execute(sql, params)
        (instance.pk,) = db.fetchone()
    instance._state.adding = False
    instance._state.db = connection.alias


@functools.cache
def _get_sql(model: type[models.Model], names: tuple[str, ...], lock: bool) -> str:
    quote = connection.ops.quote_name
    where = " AND ".join(
        f"x.{quote(str(cast('models.Field[Any, Any]', model._meta.get_field(name)).column))} = %s" for name in names
    )
    sql = f"SELECT {select_list(model, 'x')} FROM {table(model)} x WHERE {where}"  # noqa: S608
    return sql + " FOR UPDATE" if lock else sql


def get(model: type[M], *, for_update: bool = False, **lookup: Any) -> M | None:
    """`model.objects[.select_for_update()].filter(**lookup).first()` for plain equality on concrete fields (by
    name or attname), written once per set of names; None when no row matches. The lookup should name a unique
    key (the first row found is returned)."""
    names = tuple(sorted(lookup))
    lock = for_update and connection.features.has_select_for_update
    with cursor() as db:
        db.execute(_get_sql(model, names, lock), [lookup[name] for name in names])
        row = db.fetchone()
    return None if row is None else instance(model, row)


def select(model: type[M], **lookup: Any) -> list[M]:
    """`list(model.objects.filter(**lookup))` for plain equality on concrete fields, in the model's default order
    (which must name fields of the model itself), written once per set of names."""
    names = tuple(sorted(lookup))
    with cursor() as db:
        db.execute(_select_sql(model, names), [lookup[name] for name in names])
        found = db.fetchall()
    return [instance(model, row) for row in found]


@functools.cache
def _select_sql(model: type[models.Model], names: tuple[str, ...]) -> str:
    quote = connection.ops.quote_name
    order = []
    for name in model._meta.ordering or ():
        descending = isinstance(name, str) and name.startswith("-")
        field = cast("models.Field[Any, Any]", model._meta.get_field(str(name).lstrip("-")))
        order.append(f"x.{quote(str(field.column))}{' DESC' if descending else ''}")
    sql = _get_sql(model, names, False)
    return f"{sql} ORDER BY {', '.join(order)}" if order else sql


@functools.cache
def _insert_new_sql(model: type[models.Model], conflict: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    sql, fields = _insert_sql(model)
    quote = connection.ops.quote_name
    columns = ", ".join(
        quote(str(cast("models.Field[Any, Any]", model._meta.get_field(name)).column)) for name in conflict
    )
    insert, returning = sql.rsplit(" RETURNING ", 1)
    return f"{insert} ON CONFLICT ({columns}) DO NOTHING RETURNING {returning}", fields


def insert_new(instance: models.Model, *, conflict: Sequence[str]) -> bool:
    """`insert(instance)` unless a row with the same values of the unique key `conflict` exists (`INSERT ... ON
    CONFLICT (...) DO NOTHING RETURNING`, written once per model and key): True if inserted. When False nothing
    was written and the instance is unchanged: another transaction stored that key first (in PostgreSQL, one that
    committed, or is in flight and committed while this statement waited for it), with no failed statement and
    no error in the database's log."""
    sql, fields = _insert_new_sql(type(instance), tuple(conflict))
    params = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with cursor() as db:
        db.execute(sql, params)
        row = db.fetchone()
    if row is None:
        return False
    (instance.pk,) = row
    instance._state.adding = False
    instance._state.db = connection.alias
    return True


def insert_many(instances: Sequence[models.Model]) -> None:
    """`insert` of several new instances of one model in one multi-row statement (their ids set in order, as
    Django's bulk_create does on PostgreSQL and SQLite 3.35+)."""
    if not instances:
        return
    sql, fields = _insert_sql(type(instances[0]))
    head, returning = sql.rsplit(" VALUES ", 1)
    marks, returning = returning.split(" RETURNING ", 1)
    params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for obj in instances for field in fields]
    with cursor() as db:
        db.execute(f"{head} VALUES {', '.join([marks] * len(instances))} RETURNING {returning}", params)
        ids = db.fetchall()
    for obj, (pk,) in zip(instances, ids, strict=True):
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = connection.alias
