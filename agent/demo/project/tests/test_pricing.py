from shop.pricing import bulk_discount, line_total, order_total


def test_no_discount_for_small_orders():
    assert bulk_discount(1) == 0.0
    assert bulk_discount(9) == 0.0


def test_discount_starts_at_ten():
    assert bulk_discount(10) == 0.10
    assert line_total(2.0, 10) == 18.0


def test_big_discount_from_fifty():
    assert bulk_discount(50) == 0.20


def test_order_total():
    assert order_total([(2.0, 1), (1.0, 12)]) == 12.8
