"""What the Shopify client's mixins (bulk inventory, product media) call on the client they
are mixed into, declared once for the type checker."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fusion.plugins.base import HttpClient, StoreConnection


class ShopifyCalls:
    """A mixin's view of the Shopify client: nothing at run time."""

    if TYPE_CHECKING:
        conn: StoreConnection
        http: HttpClient

        def log(self, message: str) -> None: ...

        def graphql(
            self, operation: str, query: str, variables: Mapping[str, Any], *, items: int = 1
        ) -> dict[str, Any]: ...

        def _payload(
            self, data: Mapping[str, Any], field: str, operation: str
        ) -> dict[str, Any]: ...
