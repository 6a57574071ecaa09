"""The differential tester's parts (scripts/difftest.py is its command)."""
