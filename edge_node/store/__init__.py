"""The edge's state database: tasks received from the hub and datasets registered here."""
