"""Reporters: JSON (the contract), HTML (self-contained), CSV, SARIF, JUnit, evidence captures."""
