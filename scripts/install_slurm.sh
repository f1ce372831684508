#!/usr/bin/env bash
# Install a single-node Slurm (slurmctld, slurmd, the client commands) and munge from the
# distribution, for the tests that start a real local cluster (tests/slurm_cluster.py).
#
# Idempotent: does nothing when slurmctld is already on PATH. Needs root and apt-get
# (Debian/Ubuntu); otherwise it says why and exits 0, so CI can call it unconditionally
# and the slurm tests skip themselves.
#
# The packages are the ones the metapackage slurm-wlm pulls in, named directly so that
# --no-install-recommends keeps the set minimal: slurmctld, slurmd, slurm-client
# (sinfo, sbatch, scontrol, ...) and munge (authentication). Their postinst scripts do not
# start the daemons in a container whose policy-rc.d denies it (Docker's default), and the
# test fixture starts its own copies with its own configuration anyway.
set -euo pipefail

packages=(slurmctld slurmd slurm-client munge)

if command -v slurmctld >/dev/null 2>&1 || [[ -x /usr/sbin/slurmctld ]]; then
    echo "install_slurm: slurmctld already installed; nothing to do"
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    echo "install_slurm: not root; skipping (the slurm tests will skip)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_slurm: no apt-get; skipping (the slurm tests will skip)"
    exit 0
fi

start=$(date +%s)
export DEBIAN_FRONTEND=noninteractive
echo "install_slurm: apt-get update"
if ! apt-get update -qq; then
    echo "install_slurm: apt-get update failed (no network?); skipping (the slurm tests will skip)"
    exit 0
fi
echo "install_slurm: apt-get install ${packages[*]}"
if ! apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; then
    echo "install_slurm: apt-get install failed; skipping (the slurm tests will skip)"
    exit 0
fi
echo "install_slurm: installed $(slurmctld -V 2>/dev/null || echo 'slurmctld (version unknown)')" \
    "in $(($(date +%s) - start)) s"
