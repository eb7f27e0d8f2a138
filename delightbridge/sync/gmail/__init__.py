"""Talking to Gmail: requests built from Google's discovery document, sent with aiohttp.

google-api-python-client builds every request (paths, parameters, encoding) from the
discovery document it ships; aiohttp sends them, so no call blocks the event loop and
many run concurrently over pooled connections. See ``client.GmailClient``.
"""
