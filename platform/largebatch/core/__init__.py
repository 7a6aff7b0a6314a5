"""The ground floor every layer shares, importable without torch, Ray or Optuna.

- :mod:`largebatch.core.errors`: :class:`~largebatch.core.errors.ConfigError` and one-line pydantic errors.
- :mod:`largebatch.core.yaml_io`: reading YAML files (YAML 1.2 booleans, duplicate keys refused) and ``--set``
  overrides.

The run-directory format (writer, tolerant reader, runs table) is the sibling package :mod:`largebatch.records`.
"""
