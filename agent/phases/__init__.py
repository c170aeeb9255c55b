"""The seven pipeline phases, one module or subpackage each."""
