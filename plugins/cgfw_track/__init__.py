"""Experiment trackers, registered through cgfw's entry points like any plugin's: TensorBoard
(the default), MLflow and Weights & Biases (optional extras: pip install "cgfw[mlflow]",
"cgfw[wandb]"). Pick them with `[run] trackers = ["tensorboard", "mlflow"]`."""
