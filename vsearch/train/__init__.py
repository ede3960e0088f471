"""Training: datasets, losses and the loop (``train(TrainConfig(...))``). Imports models, never the reverse."""
