"""Which SKUs the shop carries, and which of a wish list it does not."""


class Inventory:
    def __init__(self, skus: list[str]) -> None:
        self._skus = list(skus)  # keep the catalogue's order for listings

    def carries(self, sku: str) -> bool:
        return sku in self._skus

    def missing(self, wanted: list[str]) -> list[str]:
        """The wanted SKUs the shop does not carry, in the order asked."""
        return [sku for sku in wanted if not self.carries(sku)]
