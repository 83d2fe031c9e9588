"""hxgw: the HX Gateway, a streaming gateway in front of an OpenAI-compatible upstream."""

__version__ = "0.1.0"
