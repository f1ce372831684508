"""Launchers for `cgfw ablate --launcher NAME`: `local` (the default: in this process, or
`--jobs N` processes side by side) and `slurm` (one job array through submitit, pip install
"cgfw[slurm]"). Registered through cgfw's entry points like any plugin's."""
