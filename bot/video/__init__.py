"""Result videos into Slack: a guarded streaming download, then Slack's external upload."""
