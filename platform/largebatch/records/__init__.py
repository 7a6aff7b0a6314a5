"""The run-directory format every layer shares, importable without torch, Ray or Optuna.

- :mod:`largebatch.records.store`: the format (file names, columns, statuses) and :class:`RunStore`, its writer.
- :mod:`largebatch.records.reader`: the tolerant reader: a damaged file becomes a :class:`Damage` line, never a
  crash.
- :mod:`largebatch.records.runs`: finding runs under a folder, the runs table, and the ``largebatch runs`` command.
"""
