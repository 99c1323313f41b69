"""Runtime: the event loop choice, logging set-up, and the engine that feeds transport
events into the SIP core (clock and timer handles live here, never in ``sip/``)."""
