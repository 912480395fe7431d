"""Campaigns (issue 7): spec, templates, messages, leads, suppression, stats and privacy (data
side), plus the scheduler, ledger and worker (sending side).

Import the submodules directly (``from penguinctl.campaigns.spec import load_campaign_file``);
this package imports nothing so that ``penguinctl --help`` stays fast.
"""
