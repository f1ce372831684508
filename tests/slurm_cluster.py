"""A real single-node Slurm cluster on localhost, for testing the slurm launcher end to end.

`local_slurm(tmp_dir)` writes a slurm.conf into tmp_dir, starts its own munged, slurmctld and
slurmd (all in the foreground, as children of this process), waits until `sinfo` reports the
node idle and yields the environment to submit with ({"SLURM_CONF": ...}). On exit it cancels
every job, stops the daemons and kills anything they left behind, so no process outlives it.

Nothing system-wide is used or changed: the munge key and socket, the controller state, the
spool and the logs all live under tmp_dir (the sockets may go to a short directory in /tmp,
see `_socket_dir`), and the ports are free ones picked at start, so a system Slurm, another
test cluster or a second pytest worker does not collide with it.

It needs root (slurmd runs jobs as their submitter, slurmctld as SlurmUser=root here) and the
Debian packages slurmctld, slurmd, slurm-client and munge (scripts/install_slurm.sh).
`slurm_available()` says why a cluster cannot start, for `pytest.skip`.

Wiring: re-export the fixture from a conftest.py (tests/launchers/conftest.py does), then
request it by name in the tests beside it (importing it into a test module instead trips
ruff's F811 on every test that takes it as an argument):

    # conftest.py
    from tests.slurm_cluster import slurm

    __all__ = ["slurm"]  # a re-exported fixture, not an unused import

    # test_*.py
    @pytest.mark.slurm
    def test_x(slurm: dict[str, str]) -> None: ...  # SLURM_CONF is already in os.environ
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

NODE = "localhost"
PARTITION = "cgfw"
# Marks the daemons' environments (and so slurmstepd's, which inherits slurmd's) so that
# teardown can find strays by their /proc/<pid>/environ.
_MARKER = "CGFW_SLURM_CLUSTER"
_DAEMONS = ("munged", "slurmctld", "slurmd")
_CLIENTS = ("sinfo", "squeue", "sbatch", "scontrol", "scancel", "srun")
# The daemons live in /usr/sbin, which a non-login PATH may lack.
_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")
# A unix socket path is at most 107 bytes; slurmd puts per-step sockets in its spool dir.
_MAX_SOCKET_DIR = 60


def _which(name: str) -> str | None:
    """The path of a Slurm or munge executable, looking in the sbin directories too."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *_SBIN])
    return shutil.which(name, path=path)


def slurm_available() -> str | None:
    """None when `local_slurm` can run here, else why not (for pytest.skip)."""
    if not sys.platform.startswith("linux"):
        return f"a local Slurm cluster needs Linux, not {sys.platform}"
    if os.geteuid() != 0:
        return "a local Slurm cluster needs root (slurmd runs jobs as their submitter)"
    missing = [name for name in (*_DAEMONS, *_CLIENTS, "munge") if _which(name) is None]
    if missing:
        names = ", ".join(missing)
        return f"Slurm/munge not installed (missing {names}); see scripts/install_slurm.sh"
    return None


def _free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nothing listens on now (the daemons bind them a moment later).

    The sockets stay open until all are picked, so the kernel cannot hand out one port twice.
    """
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _socket_dir(tmp_dir: Path) -> tuple[Path, bool]:
    """Where the munge socket and slurmd's spool go, and whether it is a directory of our own.

    pytest's tmp_path can be too long for unix sockets, so a short /tmp directory is used then.
    """
    if len(str(tmp_dir)) <= _MAX_SOCKET_DIR:
        path = tmp_dir / "run"
        path.mkdir(parents=True, exist_ok=True)
        return path, False
    return Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp")), True


def write_config(tmp_dir: Path, run_dir: Path, cpus: int) -> Path:
    """Write slurm.conf for one node `localhost` with `cpus` CPUs; returns its path."""
    for sub in ("state", "log"):
        (tmp_dir / sub).mkdir(parents=True, exist_ok=True)
    (run_dir / "spool").mkdir(parents=True, exist_ok=True)
    ctld_port, slurmd_port = _free_ports(2)
    settings = {
        "ClusterName": "cgfwtest",
        # "localhost" is accepted as the controller's name whatever the machine's hostname.
        "SlurmctldHost": NODE,
        "SlurmctldPort": str(ctld_port),
        "SlurmdPort": str(slurmd_port),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        "CredType": "cred/munge",
        # Our own munged's socket; cred_expire also sets how long a requeued job waits before it
        # may start again (default 120 s, far too long for a test).
        "AuthInfo": f"socket={run_dir / 'munge.sock'},cred_expire=5",
        "StateSaveLocation": str(tmp_dir / "state"),
        "SlurmdSpoolDir": str(run_dir / "spool"),
        "SlurmctldPidFile": str(tmp_dir / "slurmctld.pid"),
        "SlurmdPidFile": str(tmp_dir / "slurmd.pid"),
        "SlurmctldLogFile": str(tmp_dir / "log" / "slurmctld.log"),
        "SlurmdLogFile": str(tmp_dir / "log" / "slurmd.log"),
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
        # No cgroups: containers rarely let us manage them, and nothing here needs limits.
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "JobAcctGatherType": "jobacct_gather/none",
        # No slurmdbd, so `sacct` answers "Slurm accounting storage is disabled".
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "SelectType": "select/cons_tres",
        # Cores, not whole nodes, are the unit: two 1-CPU jobs run side by side.
        "SelectTypeParameters": "CR_Core",
        "MpiDefault": "none",
        "MailProg": "/bin/true",
        "ReturnToService": "2",
        "JobRequeue": "1",
        # Short timeouts and a scheduler that looks at the queue every second, so that a job
        # whose begin time has passed (a requeued one) starts promptly rather than within 60 s.
        "SchedulerType": "sched/backfill",
        "SchedulerParameters": "sched_interval=1,bf_interval=1",
        "SlurmctldTimeout": "10",
        "SlurmdTimeout": "10",
        "MessageTimeout": "5",
        "InactiveLimit": "0",
        "KillWait": "2",
        "Waittime": "0",
        # Finished jobs stay visible to scontrol/squeue for 5 minutes.
        "MinJobAge": "300",
    }
    lines = [f"{key}={value}" for key, value in settings.items()]
    lines.append(f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1024 State=UNKNOWN")
    lines.append(f"PartitionName={PARTITION} Nodes={NODE} Default=YES MaxTime=INFINITE State=UP")
    conf = tmp_dir / "slurm.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _write_munge_key(path: Path) -> None:
    """A fresh random key, readable by root only (munged refuses a looser one)."""
    path.write_bytes(os.urandom(1024))
    path.chmod(0o400)


def _munged_command(tmp_dir: Path, run_dir: Path) -> list[str]:
    """munged in the foreground with its own key, socket, pid, seed and log files.

    --force: munged wants every directory above its socket searchable by all, which pytest's
    0700 tmp directories are not; with --force that is only a warning (root can reach it).
    """
    munge_dir = tmp_dir / "munge"
    munge_dir.mkdir(parents=True, exist_ok=True)
    munge_dir.chmod(0o700)
    _write_munge_key(munge_dir / "munge.key")
    return [
        str(_which("munged")),
        "--foreground",
        "--force",
        f"--socket={run_dir / 'munge.sock'}",
        f"--key-file={munge_dir / 'munge.key'}",
        f"--pid-file={munge_dir / 'munged.pid'}",
        f"--seed-file={munge_dir / 'munged.seed'}",
        f"--log-file={tmp_dir / 'log' / 'munged.log'}",
    ]


class _Cluster:
    """The daemons started so far, their environment and how to report on them."""

    def __init__(self, tmp_dir: Path, env: dict[str, str]) -> None:
        self.tmp_dir = tmp_dir
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, command: list[str]) -> None:
        """Start one daemon in the foreground, its output going to log/<name>.out."""
        out = self.tmp_dir / "log" / f"{name}.out"
        with out.open("wb") as sink:
            # A new session: Ctrl-C in the terminal reaches pytest, which then tears down,
            # instead of killing the daemons under a still-running job.
            self.procs[name] = subprocess.Popen(
                command,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def run(self, *args: str, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        """A client command against this cluster (never raises on a non-zero exit)."""
        return subprocess.run(
            [str(_which(args[0])), *args[1:]],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def logs(self, lines: int = 25) -> str:
        """The last lines of every daemon's log and captured output, for error messages."""
        parts = []
        for path in sorted((self.tmp_dir / "log").glob("*")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(parts)

    def fail(self, message: str) -> RuntimeError:
        return RuntimeError(f"local Slurm cluster: {message}\n{self.logs()}")

    def check_alive(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise self.fail(f"{name} exited with status {proc.returncode}")

    def wait_for(self, what: str, ready: Callable[[], bool], timeout: float) -> None:
        """Poll `ready` every 0.2 s; fail with the logs if a daemon dies or time runs out."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check_alive()
            if time.monotonic() > deadline:
                raise self.fail(f"{what} not ready after {timeout:.0f} s")
            time.sleep(0.2)

    def munge_ready(self) -> bool:
        return Path(self.env["CGFW_MUNGE_SOCKET"]).exists()

    def node_idle(self) -> bool:
        result = self.run("sinfo", "--noheader", "--Node", "--format=%T", f"--nodes={NODE}")
        return result.returncode == 0 and result.stdout.strip() == "idle"

    def queue_empty(self) -> bool:
        result = self.run("squeue", "--noheader", "--format=%i")
        return result.returncode != 0 or not result.stdout.strip()

    def cancel_jobs(self, timeout: float) -> None:
        """Cancel every job and wait for the queue to drain, so no slurmstepd is left running."""
        if "slurmctld" not in self.procs or self.procs["slurmctld"].poll() is not None:
            return
        self.run("scancel", f"--partition={PARTITION}")
        deadline = time.monotonic() + timeout
        while not self.queue_empty() and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM each daemon, the last started first; SIGKILL those that outlive `timeout`."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)


def _strays(marker: str) -> list[int]:
    """Pids (other than ours) whose environment carries this cluster's marker: slurmstepd and
    anything else the daemons spawned that outlived them."""
    needle = f"{_MARKER}={marker}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _kill_strays(marker: str) -> None:
    for pid in _strays(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def local_slurm(tmp_dir: Path, timeout_s: float = 30.0) -> Iterator[dict[str, str]]:
    """Run munged, slurmctld and slurmd for one node `localhost`; yield {"SLURM_CONF": ...}.

    Raises RuntimeError (with the daemons' log tails) if the node is not idle within timeout_s.
    Everything started is stopped on exit, on success or failure alike.
    """
    reason = slurm_available()
    if reason is not None:
        raise RuntimeError(reason)
    tmp_dir = Path(tmp_dir).resolve()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    run_dir, own_run_dir = _socket_dir(tmp_dir)
    # Two CPUs (so two jobs run at once) unless the machine has fewer: a node configured with
    # more CPUs than slurmd finds would be drained.
    conf = write_config(tmp_dir, run_dir, cpus=min(2, os.cpu_count() or 1))
    marker = uuid.uuid4().hex
    daemon_env = {
        **os.environ,
        "SLURM_CONF": str(conf),
        "CGFW_MUNGE_SOCKET": str(run_dir / "munge.sock"),
        _MARKER: marker,
    }
    cluster = _Cluster(tmp_dir, daemon_env)
    try:
        cluster.start("munged", _munged_command(tmp_dir, run_dir))
        cluster.wait_for("munged", cluster.munge_ready, timeout_s)
        # -i: ignore any state in StateSaveLocation (there is none; a fresh cluster each time).
        cluster.start("slurmctld", [str(_which("slurmctld")), "-D", "-i"])
        # -N: the node is "localhost" in slurm.conf whatever this machine's hostname is.
        cluster.start("slurmd", [str(_which("slurmd")), "-D", "-N", NODE])
        cluster.wait_for(f"node {NODE} idle in sinfo", cluster.node_idle, timeout_s)
        yield {"SLURM_CONF": str(conf)}
    finally:
        try:
            cluster.cancel_jobs(timeout=15.0)
        finally:
            cluster.stop()
            _kill_strays(marker)
            if own_run_dir:
                shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def slurm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh local cluster for one test, its SLURM_CONF set in os.environ (sbatch, submitit).

    Skips the test when slurm_available() says the cluster cannot run here, or fails it with
    CGFW_REQUIRE_SLURM=1 (.ci/run sets it once Slurm is installed: there it must run).
    """
    reason = slurm_available()
    if reason is not None:
        if os.environ.get("CGFW_REQUIRE_SLURM") == "1":
            pytest.fail(f"CGFW_REQUIRE_SLURM=1 but {reason}")
        pytest.skip(reason)
    with local_slurm(tmp_path / "slurm") as env:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield env
