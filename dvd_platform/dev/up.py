"""``dvd-platform up``: the local stack, sample drops and `dg dev`, as one foreground process.

The process handling of the ``up`` command (``dvd_platform.cli`` keeps its arguments): stop
signals are forwarded to the running child, `dg dev`'s process group is ended before the
stack goes down, and nothing outlives ``up``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from dvd_platform import settings
from dvd_platform.dev.stack import Stack
from dvd_platform.dev.stack.procs import end_group


def dagster_dev_place(environ: Mapping[str, str]) -> dict:
    """Popen's ``cwd`` and ``env`` for ``dg dev`` in ``environ``. It runs in DAGSTER_HOME, where the
    instance's dagster.yaml is: from the project root it would warn that the template there is not the
    instance's. The project root goes first on its PYTHONPATH, as the working directory did, so this
    checkout's code is the code served."""
    home = Path(environ["DAGSTER_HOME"]).resolve()
    path = os.pathsep.join(p for p in (str(settings.PROJECT_ROOT), environ.get("PYTHONPATH")) if p)
    return {"cwd": home, "env": {**environ, "DAGSTER_HOME": str(home), "PYTHONPATH": path}}


STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT})


class _Foreground:
    """Whether a stop was requested, and the child it is forwarded to.

    Why a class: the signal handler and the step that starts a child share this state, and a
    child must never start unseen by the handler (see :meth:`start`).
    """

    def __init__(self) -> None:
        self.stop_requested = False
        self.current: subprocess.Popen | None = None  # the child a stop request is forwarded to

    def on_signal(self, _signum, _frame) -> None:
        self.stop_requested = True
        if self.current is not None and self.current.poll() is None:
            self.current.send_signal(signal.SIGTERM)  # dg dev then stops its webserver, daemon and code server

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """Popen with stop signals held, so a stop request always finds the child in `current`."""
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        try:
            self.current = subprocess.Popen(argv, **kwargs)
            return self.current
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # a pending request is delivered here


def _child_setup() -> None:
    """`dg dev`'s preexec: its own process group, stop signals as a foreground process has them."""
    # dg dev ignores SIGINT/SIGTERM when SIGINT is ignored (a background job): reset it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
    os.setpgid(0, 0)


def _stop_child(child: subprocess.Popen | None) -> None:
    """Terminate a child that still runs; kill it if it has not ended within 30 s."""
    if child is not None and child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _seed_argv(args: argparse.Namespace) -> list[str]:
    """The seeder's command line: ``dvd-platform seed`` with the options ``up`` was given."""
    argv = [sys.executable, "-m", "dvd_platform.cli", "seed", "--scale", str(args.scale), "--seed", str(args.seed)]
    for flag, value in (("--source", args.source), ("--days", args.days), ("--from", args.start),
                        ("--to", args.end), ("--drip", args.drip or None)):
        if value is not None:
            argv += [flag, str(value)]
    return argv


def dagster_argv(port: int) -> list[str]:
    """`dg dev` with the design card's workspace.yaml: it serves the same code location as [tool.dg]."""
    return [sys.executable, "-m", "dvd_platform.dagster_notices", "dev", "-h", "127.0.0.1", "-p", str(port),
            "-w", str(settings.PROJECT_ROOT / "workspace.yaml")]


def _print_ui_hint(port: int) -> None:
    """Where the UI is and the first thing to do in it: ``up`` is the way in for someone new."""
    print(f"\nDagster UI: http://127.0.0.1:{port}  (Ctrl-C stops Dagster and the stack)\n"
          "  First: Assets > type +key:stg_rental in the selection box > Materialize all > pick a range "
          "that starts on the first seeded day > Launch (a range is one run).\n"
          "  The landing sensor also queues daily_pipeline: one range run for consecutive seeded days (Runs; Automation to stop it).\n",
          flush=True)


def _shut_down(stack: Stack, seeder: subprocess.Popen | None, dagster: subprocess.Popen | None) -> None:
    """`dg dev` and whatever its process group left behind, then the seeder, then the stack, in that order."""
    _stop_child(dagster)
    if dagster is not None:
        # dagster dev's code server exits a moment after it: give its leftovers time, then end them.
        end_group(dagster.pid, ((None, 15.0), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)))
    _stop_child(seeder)
    stack.down()
    print("stopped: dagster, stack", flush=True)


def run_up(args: argparse.Namespace) -> int:
    """Stack up, seed, then `dg dev` in the foreground; Ctrl-C or SIGTERM stops everything.

    A stop request never interrupts a step half-way (a half-started stack could leak a
    server): it is forwarded to the running child (the seeder, `dg dev`) and checked
    between steps. `dg dev` runs in its own process group (its webserver, daemon, code
    server and runs inherit it), so whatever it leaves behind is waited for, then ended,
    before the stack goes down: nothing outlives `up`.
    """
    foreground = _Foreground()
    previous = {sig: signal.signal(sig, foreground.on_signal) for sig in STOP_SIGNALS}
    stack = Stack(spark_connect=not args.classic_spark)
    seeder: subprocess.Popen | None = None
    dagster: subprocess.Popen | None = None
    code = 0
    try:
        values = stack.up()  # gives the stack's own DAGSTER_HOME the project's dagster.yaml
        os.environ.update({k: v for k, v in values.items() if k not in os.environ})
        if not args.no_seed and not foreground.stop_requested:
            seeder = foreground.start(_seed_argv(args))
            if not args.drip:  # with --drip it keeps uploading while the UI runs
                if seeder.wait() != 0 and not foreground.stop_requested:
                    raise RuntimeError(f"seeding failed (exit code {seeder.returncode}); the stack is stopped")
        if not foreground.stop_requested:
            _print_ui_hint(args.port)
            dagster = foreground.start(dagster_argv(args.port), **dagster_dev_place(os.environ), preexec_fn=_child_setup)
            code = dagster.wait()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup below always runs to its end
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            _shut_down(stack, seeder, dagster)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
