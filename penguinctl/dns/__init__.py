"""DNS for sending domains: the record set (``records``) and RFC 1035 zone files (``zonefile``).

Both are pure helpers; providers in ``penguinctl.providers.dns`` do the I/O.
"""
