"""Input and output of medical images."""
