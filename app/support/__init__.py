"""``missionctl support-bundle``: one redacted archive for asking for help."""
