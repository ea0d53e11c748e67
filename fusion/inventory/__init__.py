"""Inventory across stores: the recurring sync that keeps every platform's stock honest."""
