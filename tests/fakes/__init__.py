"""Local stand-ins for Slack's Web API and kie.ai's API, served over real HTTP on loopback."""
