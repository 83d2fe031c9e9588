"""The request path: the chain of steps every request runs through, one step a
module, the context they share and the exchange they answer through.

May import: config, routing, upstream, observe, keys, hxgw.state; never server or
lifecycle.
"""
