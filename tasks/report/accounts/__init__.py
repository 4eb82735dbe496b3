"""A page per account (SPEC 10.2): ``<out>/<D>/accounts/<account_id>.html``.

``phrases`` says each measure in a CSM's words, ``svg`` draws the page's charts (data in, inline
SVG out), ``history`` reads the 52 weeks the pages show once per run, ``context`` assembles one
page's finished values and ``pages`` picks the accounts, renders and links the pages.
"""
