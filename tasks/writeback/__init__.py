"""CRM write-back: the score and its context written onto each account in HubSpot, Salesforce
or a database table, only where a value changed since the last successful write (SPEC 10.2).
"""
