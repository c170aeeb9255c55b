"""A small shop: prices, discounts and an inventory (the selfheal demo project)."""
