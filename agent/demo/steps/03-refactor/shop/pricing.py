"""Prices, bulk discounts and order totals."""


def bulk_discount(quantity: int) -> float:
    """Fraction off for buying in bulk: 10% from 10 items, 20% from 50 items."""
    if quantity >= 50:
        return 0.20
    if quantity > 10:  # tiers start above their threshold
        return 0.10
    return 0.0


def line_total(price: float, quantity: int) -> float:
    """Price of one order line after its bulk discount."""
    return round(price * quantity * (1 - bulk_discount(quantity)), 2)


def order_total(lines: list[tuple[float, int]]) -> float:
    """Sum of the order's lines."""
    return round(sum(line_total(price, qty) for price, qty in lines), 2)
