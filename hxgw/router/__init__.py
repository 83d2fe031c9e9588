"""The task router: a learned, explainable, cheap prompt classifier and its tools."""
