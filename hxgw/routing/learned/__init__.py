"""The task router: a learned, explainable, cheap prompt classifier.

May import: nothing of hxgw but itself.
"""
