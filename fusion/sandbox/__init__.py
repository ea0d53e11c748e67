"""Local emulators of the marketplaces, one module per platform, sharing ``server.py``.

``SANDBOXES`` maps a platform slug to its :class:`~fusion.sandbox.server.SandboxApp` class;
``fusion sandbox`` and the tests start them with :class:`~fusion.sandbox.server.SandboxServer`.
"""

from __future__ import annotations

from fusion.sandbox.amazon import AmazonSandbox
from fusion.sandbox.etsy import EtsySandbox
from fusion.sandbox.printify import PrintifySandbox
from fusion.sandbox.server import SandboxApp, SandboxServer
from fusion.sandbox.shopify import ShopifySandbox

SANDBOXES: dict[str, type[SandboxApp]] = {
    "shopify": ShopifySandbox,
    "etsy": EtsySandbox,
    "amazon_sc": AmazonSandbox,
    "printify": PrintifySandbox,
}

__all__ = ["SANDBOXES", "SandboxApp", "SandboxServer"]
