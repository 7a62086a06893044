"""The command lines: ``udc`` (info, check, doctor), ``udc-bench``, ``udc-parity``, ``udc-predict``."""
