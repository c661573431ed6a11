"""`launcher report MODEL_DIR`: run.json as a terminal summary and a self-contained HTML page. No TensorFlow."""
