"""The control plane behind ``penguinctl serve``: recorded specs, the job registry and schedules,
job runs, the scheduler and its leader election. The HTTP app is ``penguinctl.web``."""
