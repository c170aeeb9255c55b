"""Serve a fixed number of requests to the shop, as a load generator would."""

import contextlib
import os

import shop

for basket in range(int(os.environ.get("SHOP_REQUESTS", "30"))):
    shop.list_items()
    with contextlib.suppress(ValueError):  # a web framework would answer 500 here
        shop.checkout(basket)
