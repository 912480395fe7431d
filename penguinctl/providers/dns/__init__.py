"""DNS providers: publish the record set of each sending domain (``zonefile`` is embedded)."""
