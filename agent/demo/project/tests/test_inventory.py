from shop.inventory import Inventory

SKUS = [f"sku-{i:05d}" for i in range(2000)]


def test_carries():
    inv = Inventory(["a", "b"])
    assert inv.carries("a") and not inv.carries("c")


def test_missing_from_a_large_catalogue():
    inv = Inventory(SKUS)
    wanted = SKUS[::2] + [f"new-{i}" for i in range(1000)]
    missing = inv.missing(wanted)
    assert len(missing) == 1000
    assert missing[0] == "new-0"
