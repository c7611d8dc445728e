"""overconf: do score-based membership inference attacks fire on data a model never saw?

Data flows one way: config -> data splits and sources -> trained models (cached) ->
outputs per (model, source) (cached) -> attacks and metrics (pure functions of tensors)
-> results table, figures, TensorBoard.
"""

__version__ = "0.1.0"
