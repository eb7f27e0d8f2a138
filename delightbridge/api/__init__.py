"""The HTTP edge: the admin sync endpoint, Auth.js sessions, the connect flow, health."""
