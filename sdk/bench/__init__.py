"""Latency: on this host (``host``), on an Android phone over adb (``android``), on an iPhone (``ios``)."""
