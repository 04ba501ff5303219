"""Contracts with the API, generated from the repository's contracts/ folder (see scripts/gen-contracts.ts)."""
