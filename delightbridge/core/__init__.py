"""Settings, the domain errors, logging and the small servers every process shares."""
