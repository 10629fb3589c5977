"""What a run leaves for people and machines: the HTML report and Prometheus metrics."""
