"""High availability: registrations, dialogs and bans shared by the nodes of a cluster
through Redis (``[ha] backend = "redis"``), so that a node taking over the floating IP, or
a second active node, carries on with them.

Modules: :mod:`.client` (connection and health), :mod:`.location`, :mod:`.bans`,
:mod:`.dialogs` (the three stores), :mod:`.shared` (them together, with their background
tasks), :mod:`.wiring` (what the composition root calls; imports Redis only when asked
to), :mod:`.probe` (the SIP OPTIONS health check of the Pacemaker resource agent).
"""
