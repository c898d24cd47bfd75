"""Linear regression by gradient descent, as configurable Lightning experiments."""
