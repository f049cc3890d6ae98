"""The hospital side: flat datasets, the task runner with disclosure control, the hub agent."""
