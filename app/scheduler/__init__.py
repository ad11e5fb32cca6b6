"""The scheduler process (the dispatcher): everything that runs in it lives here.

The web side (app.api, app.ui, the stores) writes jobs; this package fires them and
delivers their runs. The two share nothing but the database.
"""
