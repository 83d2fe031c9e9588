"""A client's upload (multipart/form-data: audio, images, files) read as it streams in,
held whole only when small: `upload` is its body on its way, `multipart` cuts it into parts and
rewrites the head the upstream reads as `model`, `form_part` reads one part's head.

May import what the pipeline may; never the steps.
"""
