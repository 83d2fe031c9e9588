"""Client keys and what protects them: the bad-key guard.

May import: hxgw.config, hxgw.errors.
"""
