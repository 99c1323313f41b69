"""Management: the HTTP API, Prometheus metrics, the message capture and the dashboard.

:func:`~sipedge.mgmt.server.start_management` runs it inside sipedge's event loop;
:func:`~sipedge.mgmt.api.create_api` builds the ASGI app over any
:class:`~sipedge.mgmt.facade.Management` implementation.
"""
