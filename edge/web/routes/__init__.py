"""The dashboard's HTTP routes, one module per concern; :func:`edge.web.app.build_app` assembles them.

Each module holds plain ``async`` handlers that take the request and exactly the objects they use
(the bridge, the transcript, the classifier, the auth state), and a ``routes(...)`` function that
binds those objects and returns the module's :class:`starlette.routing.Route` list. No handler
reaches into another's state, so each can be read and tested on its own.
"""
