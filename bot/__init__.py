"""kie-slack: the Slack app and HTTP server behind kie.ai video-generation callbacks."""

__version__ = "0.1.0"
