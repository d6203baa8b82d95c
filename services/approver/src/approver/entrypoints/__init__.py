"""Where requests come in: the approvals HTTP API, the inbox page (with its static files in
``web/``), and the background loops a process starts. Thin: they translate, then call the
service layer or the loops; the rules are in :mod:`approver.domain`.
"""
