"""Everything a policy must not be able to do, one `mode` at a time. Each
attempt either fails (and the SDK returns the exception as the policy's
error) or is contained by the host (deadline, memory limit)."""
# Imported here so the codec is in the component's snapshot: CPython looks
# it up when resolving any host name, and without it a socket attempt fails
# in Python before it ever reaches the host's denial.
import encodings.idna  # noqa: F401
import os
import random
import socket
import time
import urllib.request
from dataclasses import dataclass

from verdict_sdk import Info, Input, Outcome, PolicyError, Reason, parse_settings
from verdict_sdk.component import export


@dataclass
class Settings:
    mode: str = "clock-random"


def loop() -> Outcome:
    n = 0
    while True:
        n += 1


def memory() -> Outcome:
    hoard = []
    while True:
        hoard.append(bytearray(8 << 20))


def read_file() -> Outcome:
    with open("/etc/passwd") as f:
        return Outcome.promote([Reason(f"read {len(f.read())} bytes of /etc/passwd")])


def read_env() -> Outcome:
    value = os.environ.get("PATH") or os.environ.get("HOME")
    if value is None:
        raise PolicyError(f"no environment: {len(os.environ)} variables visible")
    return Outcome.promote([Reason(f"PATH={value}")])


def open_socket() -> Outcome:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(("127.0.0.1", 8080))
    return Outcome.promote([Reason(f"connected {s}")])


def http() -> Outcome:
    body = urllib.request.urlopen("http://example.com/", timeout=1).read()
    return Outcome.promote([Reason(f"fetched {len(body)} bytes")])


def clock_random() -> Outcome:
    # Read everything twice: a replay must reproduce every value.
    values = []
    for _ in range(2):
        values.append(f"wall {time.time():.3f}")
        values.append(f"monotonic {time.monotonic_ns()}")
        values.append(f"random {random.random():.12f}")
        values.append(f"urandom {os.urandom(8).hex()}")
    print("clock and random:", ", ".join(values))
    return Outcome.promote([Reason(v) for v in values])


def exit_process() -> Outcome:
    # Ends the "process" through wasi:cli/exit instead of returning.
    os._exit(3)


MODES = {"exit": exit_process, "loop": loop, "memory": memory, "file": read_file, "env": read_env,
         "socket": open_socket, "http": http, "clock-random": clock_random}


class Hostile:
    def describe(self) -> Info:
        return Info("hostile-py", "0.1.0", "tries what a policy must not do (sandbox tests)")

    def validate_settings(self, text: str) -> None:
        if parse_settings(text, Settings).mode not in MODES:
            raise PolicyError(f"invalid settings: `mode` must be one of {', '.join(MODES)}")

    def evaluate(self, input: Input) -> Outcome:
        return MODES[parse_settings(input.settings, Settings).mode]()


WitWorld = export(Hostile())
