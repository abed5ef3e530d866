"""Helpers shared by the tests (no tests here): one CLI runner, one require policy, one process waiter."""
