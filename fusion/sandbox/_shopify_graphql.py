"""The GraphQL half of the Shopify sandbox: parse, validate against the Admin SDL contract when
it is present, price a query the way Shopify does, and shape resolver results to a selection.

Resolvers in ``fusion.sandbox.shopify`` return whole objects as dicts; :func:`project` keeps
only the fields (with aliases) that the document selected, so the sandbox answers any selection
of the fields it models without a schema of its own. The contract is only used to reject what
the real API would reject (unknown fields, wrong argument and variable types).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    build_schema,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.utilities import value_from_ast_untyped

from fusion.sandbox.server import contracts_dir

log = logging.getLogger(__name__)

CONTRACT_FILE = Path("shopify") / "admin-graphql-2026-07.graphql"
MAX_QUERY_COST = 1000
MUTATION_COST = 10
_schema_lock = threading.Lock()


def contract_schema() -> GraphQLSchema | None:
    """The Admin API schema built from the SDL contract (cached; building takes seconds), or
    None when the contract file is absent, in which case validation is off (logged once)."""
    with _schema_lock:
        return _load_schema(str(contracts_dir() / CONTRACT_FILE))


@cache
def _load_schema(path: str) -> GraphQLSchema | None:
    file = Path(path)
    if not file.is_file():
        log.warning("shopify sandbox: %s not found; GraphQL contract validation is off", file)
        return None
    # assume_valid: Shopify's live schema breaks a few of graphql-core's own schema rules
    # (deprecated implementations of non-deprecated interface fields); documents are still
    # validated against it in full.
    return build_schema(file.read_text(encoding="utf-8"), assume_valid=True)


class GraphQLRequestError(Exception):
    """A request the API refuses before running it; ``errors`` are GraphQL error dicts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors[0]["message"] if errors else "invalid request")
        self.errors = errors


def _error(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code, **extra}}


class Document:
    """One parsed, validated operation with its variables."""

    def __init__(
        self,
        text: str,
        variables: Mapping[str, Any] | None,
        operation_name: str | None = None,
        *,
        schema: GraphQLSchema | None,
        check_variables: bool = True,
    ) -> None:
        try:
            self.ast: DocumentNode = parse(text)
        except GraphQLError as exc:
            raise GraphQLRequestError([_error(exc.message, "PARSE_ERROR")]) from exc
        if schema is not None:
            problems = validate(schema, self.ast)
            if problems:
                raise GraphQLRequestError(
                    [_error(p.message, "GRAPHQL_VALIDATION_FAILED") for p in problems]
                )
        operations = [d for d in self.ast.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name:
            operations = [o for o in operations if o.name and o.name.value == operation_name]
        if len(operations) != 1:
            raise GraphQLRequestError([_error("expected exactly one operation", "BAD_REQUEST")])
        self.operation = operations[0]
        self.fragments = {
            d.name.value: d for d in self.ast.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.variables = dict(variables or {})
        if schema is not None and check_variables:
            coerced = get_variable_values(
                schema, self.operation.variable_definitions or (), self.variables
            )
            if isinstance(coerced, list):
                raise GraphQLRequestError([_error(e.message, "INVALID_VARIABLE") for e in coerced])
        # Defaults declared on the operation apply to variables the caller left out.
        for definition in self.operation.variable_definitions or ():
            name = definition.variable.name.value
            if name not in self.variables and definition.default_value is not None:
                self.variables[name] = value_from_ast_untyped(definition.default_value)

    @property
    def is_mutation(self) -> bool:
        return self.operation.operation == OperationType.MUTATION

    def root_fields(self) -> list[FieldNode]:
        return self.fields(self.operation.selection_set)

    def fields(self, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        """The fields of a selection set, with fragments flattened (type conditions ignored:
        the sandbox models one concrete type per position)."""
        out: list[FieldNode] = []
        for selection in selection_set.selections if selection_set else ():
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                out.extend(self.fields(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    out.extend(self.fields(fragment.selection_set))
        return out

    def arguments(self, field: FieldNode) -> dict[str, Any]:
        """The field's arguments with variables substituted; an argument whose variable was not
        provided is left out (so callers can tell omitted from explicit null)."""
        out: dict[str, Any] = {}
        for argument in field.arguments or ():
            node = argument.value
            if node.kind == "variable" and node.name.value not in self.variables:  # type: ignore[attr-defined]
                continue
            out[argument.name.value] = value_from_ast_untyped(node, self.variables)
        return out

    def directive_arguments(self, field: FieldNode, name: str) -> dict[str, Any] | None:
        for directive in field.directives or ():
            if directive.name.value == name:
                return {
                    a.name.value: value_from_ast_untyped(a.value, self.variables)
                    for a in directive.arguments or ()
                }
        return None

    # -- shaping and pricing --------------------------------------------------------------------

    def project(self, value: Any, selection_set: SelectionSetNode | None) -> Any:
        """Keep the selected fields of ``value`` (dicts and lists of dicts), under their aliases.
        A connection's ``first``/``last`` slices its ``nodes``/``edges``."""
        if value is None or selection_set is None:
            return value
        if isinstance(value, list):
            return [self.project(item, selection_set) for item in value]
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for field in self.fields(selection_set):
            key = field.alias.value if field.alias else field.name.value
            item = value.get(field.name.value)
            if isinstance(item, Mapping) and ("nodes" in item or "edges" in item):
                item = _slice_connection(item, self.arguments(field))
            out[key] = self.project(item, field.selection_set)
        return out

    def cost(self) -> int:
        """Requested cost as Shopify prices it: a mutation 10, an object 1, a scalar 0, and a
        connection 2 plus ``first``/``last`` times the cost of one node."""
        if self.is_mutation:
            return MUTATION_COST
        return sum(self._field_cost(f) for f in self.root_fields())

    def _field_cost(self, field: FieldNode) -> int:
        if field.selection_set is None:
            return 0
        arguments = self.arguments(field)
        size = arguments.get("first") or arguments.get("last")
        children = self.fields(field.selection_set)
        if isinstance(size, int):
            per_node = 0
            for child in children:
                if child.name.value == "nodes":
                    per_node = max(per_node, self._object_cost(child))
                elif child.name.value == "edges":
                    for grandchild in self.fields(child.selection_set):
                        if grandchild.name.value == "node":
                            per_node = max(per_node, self._object_cost(grandchild))
            return 2 + size * per_node
        return self._object_cost(field)

    def actual_cost(self, data: Mapping[str, Any]) -> int:
        """What the query really cost, priced on the nodes returned rather than the page sizes
        asked for (Shopify refunds the difference)."""
        if self.is_mutation:
            return MUTATION_COST
        return sum(self._actual(f, data.get(_key(f))) for f in self.root_fields())

    def _actual(self, field: FieldNode, value: Any) -> int:
        if field.selection_set is None:
            return 0
        if not isinstance(value, Mapping):
            return 1 if value is None else sum(self._actual(field, v) for v in value)
        arguments = self.arguments(field)
        children = self.fields(field.selection_set)
        if isinstance(arguments.get("first") or arguments.get("last"), int):
            total = 2
            for child in children:
                if child.name.value == "nodes":
                    total += sum(self._actual(child, node) for node in value.get(_key(child)) or [])
                elif child.name.value == "edges":
                    for edge in value.get(_key(child)) or []:
                        for grandchild in self.fields(child.selection_set):
                            if grandchild.name.value == "node":
                                total += self._actual(grandchild, edge.get(_key(grandchild)))
            return total
        return 1 + sum(self._actual(c, value.get(_key(c))) for c in children)

    def _object_cost(self, field: FieldNode) -> int:
        return 1 + sum(self._field_cost(c) for c in self.fields(field.selection_set))


def _key(field: FieldNode) -> str:
    return field.alias.value if field.alias else field.name.value


def _slice_connection(
    connection: Mapping[str, Any], arguments: Mapping[str, Any]
) -> dict[str, Any]:
    first, last = arguments.get("first"), arguments.get("last")
    nodes = list(connection.get("nodes", []))
    edges = list(connection.get("edges", []))
    if isinstance(first, int):
        nodes, edges = nodes[:first], edges[:first]
    elif isinstance(last, int):
        nodes, edges = nodes[-last:], edges[-last:]
    return {**connection, "nodes": nodes, "edges": edges}
