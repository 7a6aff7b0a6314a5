"""Training: experiment config, Lightning modules, callbacks, run store."""
