"""The GraphQL documents the Shopify plugin sends (Admin API 2026-07), with their costs.

Costs follow Shopify's calculation (object 1, scalar 0, connection 2 + page size x node cost,
mutation 10) so the hub's bucket takes what Shopify will reserve; the real charge comes back in
``extensions.cost`` and corrects the bucket.
"""

from __future__ import annotations

API_VERSION = "2026-07"
MUTATION_COST = 10

PRODUCT_FIELDS = """
  id title handle status
  variants(first: 100) { nodes { id sku price inventoryQuantity inventoryItem { id } } }
"""

LIST_PAGE = 10
LIST_VARIANTS = 20
LIST_PRODUCTS = """
query listProducts($first: Int!, $after: String) {
  products(first: $first, after: $after) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id title handle
      variants(first: 20) {
        nodes { id sku price barcode title inventoryQuantity inventoryItem { id } }
      }
    }
  }
}
"""
LIST_NODE_COST = 1 + 2 + LIST_VARIANTS * 2
LIST_PRODUCTS_COST = 2 + LIST_PAGE * LIST_NODE_COST

LOCATIONS = "query primaryLocation { locations(first: 1) { nodes { id } } }"
LOCATIONS_COST = 2 + 1

VARIANTS_PAGE = 50
VARIANTS_BY_SKU = """
query variantsBySku($first: Int!, $query: String!) {
  productVariants(first: $first, query: $query) {
    nodes { id sku inventoryItem { id } product { id } }
  }
}
"""
VARIANT_NODE_COST = 1 + 1 + 1
VARIANTS_BY_SKU_COST = 2 + VARIANTS_PAGE * VARIANT_NODE_COST

PRODUCT_SET = f"""
mutation productSet($input: ProductSetInput!, $identifier: ProductSetIdentifiers) {{
  productSet(input: $input, identifier: $identifier, synchronous: true) {{
    product {{ {PRODUCT_FIELDS} }}
    userErrors {{ field message code }}
  }}
}}
"""

PRODUCT_DELETE = """
mutation productDelete($id: ID!) {
  productDelete(input: {id: $id}, synchronous: true) {
    deletedProductId
    userErrors { field message }
  }
}
"""

INVENTORY_SET = """
mutation inventorySet($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}
"""
INVENTORY_BATCH = 250  # Shopify's cap on input array length

STAGED_UPLOAD = """
mutation stagedUpload($input: [StagedUploadInput!]!) {
  stagedUploadsCreate(input: $input) {
    stagedTargets { url resourceUrl parameters { name value } }
    userErrors { field message }
  }
}
"""

BULK_RUN = """
mutation bulkRun($mutation: String!, $path: String!, $client: String) {
  bulkOperationRunMutation(
    mutation: $mutation, stagedUploadPath: $path, clientIdentifier: $client
  ) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}
"""

BULK_POLL = """
query bulkPoll($id: ID!) {
  bulkOperation(id: $id) { id status errorCode objectCount url partialDataUrl }
}
"""
BULK_POLL_COST = 1

ORDERS_PAGE = 10
ORDERS = """
query recentOrders($first: Int!, $after: String, $query: String!) {
  orders(first: $first, after: $after, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id name createdAt updatedAt cancelledAt displayFinancialStatus currencyCode
      totalPriceSet { shopMoney { amount currencyCode } }
      lineItems(first: 20) {
        nodes { id sku quantity originalUnitPriceSet { shopMoney { amount } } }
      }
    }
  }
}
"""
ORDER_NODE_COST = 1 + 2 + (2 + 20 * 3)
ORDERS_COST = 2 + ORDERS_PAGE * ORDER_NODE_COST

# Webhook subscriptions: the order topics the hub acts on, as the Admin API names them.
ORDER_SUBSCRIPTION_TOPICS = {
    "orders/create": "ORDERS_CREATE",
    "orders/paid": "ORDERS_PAID",
    "orders/updated": "ORDERS_UPDATED",
}
# The refund topic: refunds of single lines give their stock back (fusion.orders.returns).
REFUND_SUBSCRIPTION_TOPICS = {"refunds/create": "REFUNDS_CREATE"}
SUBSCRIPTIONS = """
query orderSubscriptions($uri: String!, $topics: [WebhookSubscriptionTopic!]) {
  webhookSubscriptions(first: 10, uri: $uri, topics: $topics) { nodes { id topic uri } }
}
"""
SUBSCRIPTIONS_COST = 2 + 10 * 1
SUBSCRIBE = """
mutation subscribe($topic: WebhookSubscriptionTopic!, $subscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $subscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}
"""

# Fulfilment: the order's fulfillment orders (where each line item is to be fulfilled from)
# and its fulfillments so far (a retry finds the one it made by its tracking number).
FULFILMENT_ORDERS_PAGE = 5
FULFILMENT_LINES_PAGE = 20
ORDER_FULFILMENT = """
query orderFulfilment($id: ID!) {
  order(id: $id) {
    id
    fulfillments(first: 20) { id status createdAt trackingInfo(first: 5) { company number url } }
    fulfillmentOrders(first: 5) {
      nodes {
        id status
        lineItems(first: 20) { nodes { id remainingQuantity lineItem { id } } }
      }
    }
  }
}
"""
ORDER_FULFILMENT_COST = 1 + 2 + 2 + FULFILMENT_ORDERS_PAGE * (1 + 2 + FULFILMENT_LINES_PAGE * 2)
FULFILMENT_CREATE = """
mutation fulfil($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment { id status createdAt trackingInfo(first: 5) { company number url } }
    userErrors { field message }
  }
}
"""

# Connection queries are priced per page: 2 + page size x the cost of one node.
NODE_COSTS = {
    "graphql:listProducts": LIST_NODE_COST,
    "graphql:variantsBySku": VARIANT_NODE_COST,
    "graphql:recentOrders": ORDER_NODE_COST,
}
FIXED_COSTS = {
    "graphql:primaryLocation": LOCATIONS_COST,
    "graphql:bulkPoll": BULK_POLL_COST,
    "graphql:orderSubscriptions": SUBSCRIPTIONS_COST,
    "graphql:orderFulfilment": ORDER_FULFILMENT_COST,
}


def call_cost(operation: str, items: int = 1) -> float:
    """Points one call reserves: a page query 2 + ``items`` x its node cost, a fixed query its
    cost, a mutation 10, and nothing for a call that does not reach the Admin API (the staged
    upload and the result download)."""
    if not operation.startswith("graphql:"):
        return 0.0
    if operation in NODE_COSTS:
        return float(2 + items * NODE_COSTS[operation])
    return float(FIXED_COSTS.get(operation, MUTATION_COST))


def page_size(limit: int, node_cost: int, maximum: float | None) -> int:
    """The largest page up to ``limit`` whose cost fits a bucket of ``maximum`` points (at
    least one node; ``limit`` while the bucket's size is unknown)."""
    if maximum is None:
        return limit
    return max(1, min(limit, int((maximum - 2) // node_cost)))
