"""Mirrors modules/errors.py report(): prints the message and the traceback, and goes on."""
import sys
import traceback

reported = []


def report(message, *, exc_info=False):
    reported.append(message)
    print(f"*** {message}", file=sys.stderr)
    if exc_info:
        traceback.print_exc()
