"""Result files (videos, images, tracks) into Slack: a guarded streaming download, then
Slack's external upload."""
