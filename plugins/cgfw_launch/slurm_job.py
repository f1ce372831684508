"""One Slurm array task: `cgfw run` for one run directory, in a child process, and what to do
when Slurm warns that the task will stop (preemption, the time limit).

submitit calls `checkpoint()` on its preemption signal (USR2 in submitit 1.5; the signal
`--signal` asks for before the time limit); it then pickles what that returns and requeues the
task. Slurm also signals every process of the task, the child included: the child's trainer
takes SIGTERM, SIGUSR1 and SIGUSR2 as "finish the step, checkpoint, exit", and the requeued task
resumes from that checkpoint (`run_command` sees it)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import submitit

from cgfw import RunDir, finished_losses, run_command

# How long the child may take to finish its step and write the checkpoint once told to stop.
STOP_WAIT_S = 120
# The child's exit codes when a signal stopped it (128 + signal), checkpointed.
STOPPED = {128 + s for s in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
TORCHRUN_SIGNALS = "SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR1,SIGUSR2"


class SlurmRun(submitit.helpers.Checkpointable):
    def __init__(self, run_dir: str, gpus: int = 0, device: str | None = None) -> None:
        self.run_dir, self.gpus, self.device = run_dir, gpus, device
        self._child: subprocess.Popen[bytes] | None = None

    def __call__(self) -> dict[str, float]:
        run_dir = Path(self.run_dir)
        done = finished_losses(run_dir)
        if done is not None:  # finished before this start (stopped as it was returning)
            return done
        command = run_command(run_dir, self.device, max(1, self.gpus))
        # torchrun (several GPUs) passes on only the signals it is told to handle: add the
        # schedulers' so its workers checkpoint rather than die.
        env = os.environ | {"TORCHELASTIC_SIGNALS_TO_HANDLE": TORCHRUN_SIGNALS}
        with open(RunDir(run_dir).log, "ab") as log:
            self._child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        # poll(), not wait(): wait() holds a lock that checkpoint(), run from submitit's signal
        # handler in this same thread, would need to reap the child.
        while (code := self._child.poll()) is None:
            time.sleep(0.5)
        losses = finished_losses(run_dir)
        if code == 0 and losses is not None:
            return losses
        if code in STOPPED:
            # Stopped by Slurm and checkpointed: submitit's handler (its signal follows) or
            # Slurm itself requeues this task; end only if neither does.
            time.sleep(STOP_WAIT_S)
        raise RuntimeError(f"cgfw run exited with {code}; see {RunDir(run_dir).log}")

    def checkpoint(self) -> submitit.helpers.DelayedSubmission:
        child = self._child
        if child is not None and child.returncode is None:
            child.send_signal(signal.SIGUSR1)  # in case Slurm's signal did not reach it
            if not _reaped(child.pid, STOP_WAIT_S):
                child.kill()  # the previous checkpoint stays; the requeued task resumes there
        # A fresh object: no child process in what submitit pickles for the requeued task.
        return submitit.helpers.DelayedSubmission(SlurmRun(self.run_dir, self.gpus, self.device))


def _reaped(pid: int, timeout: float) -> bool:
    """Wait for child `pid` to end, with os.waitpid rather than Popen's wait or poll: this runs
    in a signal handler that may have interrupted Popen.poll() holding its lock."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return True
        except ChildProcessError:  # reaped already
            return True
        time.sleep(0.2)
    return False
