"""Data: sources (where arrays come from), variants (what the model sees), pipeline (batches)."""
