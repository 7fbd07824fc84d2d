"""Training: optimizers and learning-rate schedules from train_config, the compiled train and eval steps."""
