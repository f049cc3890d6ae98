"""The demo's data: its lung-cancer study on the CDM (`study`) and the older flat,
seeded site tables (`generate`); no real patient's data."""
