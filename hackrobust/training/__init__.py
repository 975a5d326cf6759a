"""Training beside the method's own fit: pretraining, self-training students, the epochs kept."""
