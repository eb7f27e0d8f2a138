"""Running everything on one machine with nothing configured: the demo, the Pub/Sub
emulator launcher (the Gmail simulator is its own distribution, ``gmailsim``)."""
