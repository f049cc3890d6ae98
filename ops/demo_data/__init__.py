"""The demo's data: its lung-cancer study on the CDM (`study`); no real patient's data."""
