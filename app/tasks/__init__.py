"""Tasks: units of work for one agent, admitted only through pre-flight validation (F16)."""
