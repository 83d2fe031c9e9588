"""The request pipeline's steps, one a module (see hxgw.pipeline for the order)."""
