"""``missionctl support-bundle``: one redacted archive for asking for help (issue 9)."""
