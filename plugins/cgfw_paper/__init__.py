"""The paper's components, registered as the default cgfw plugin."""
