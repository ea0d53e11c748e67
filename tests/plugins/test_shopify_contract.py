"""Every GraphQL document the Shopify plugin sends is valid against the published Admin API
schema (read at run time from the shared contracts, never copied into the repository)."""

from __future__ import annotations

import pytest
from graphql import GraphQLSchema, parse, validate

from fusion.plugins import _shopify_queries as q
from fusion.sandbox._shopify_graphql import Document, contract_schema

DOCUMENTS = {
    name: getattr(q, name)
    for name in (
        "LIST_PRODUCTS",
        "LOCATIONS",
        "VARIANTS_BY_SKU",
        "PRODUCT_SET",
        "PRODUCT_DELETE",
        "INVENTORY_SET",
        "STAGED_UPLOAD",
        "BULK_RUN",
        "BULK_POLL",
        "ORDERS",
    )
}


@pytest.fixture(scope="module")
def schema() -> GraphQLSchema:
    loaded = contract_schema()
    if loaded is None:
        pytest.skip("shopify/admin-graphql-2026-07.graphql not found under the contracts dir")
    return loaded


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_plugin_documents_validate_against_the_sdl(schema, name):
    assert validate(schema, parse(DOCUMENTS[name])) == []


@pytest.mark.parametrize(
    ("name", "cost"),
    [
        ("LIST_PRODUCTS", q.LIST_PRODUCTS_COST),
        ("VARIANTS_BY_SKU", q.VARIANTS_BY_SKU_COST),
        ("ORDERS", q.ORDERS_COST),
        ("LOCATIONS", q.LOCATIONS_COST),
    ],
)
def test_declared_costs_match_what_the_sandbox_charges(name, cost):
    variables = {"first": {"LIST_PRODUCTS": 10, "VARIANTS_BY_SKU": 50, "ORDERS": 10}.get(name, 1)}
    assert Document(DOCUMENTS[name], variables, schema=None).cost() == cost
    assert cost <= 1000  # Shopify's single-query maximum
