"""`make eval-router`: the task classifier on held-out data, and every routing
strategy side by side in a simulation.
"""
