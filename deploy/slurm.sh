#!/bin/bash
# A polars-flock cluster job under Slurm: one task per process, every task the same binary.
#
#   sbatch deploy/slurm.sh
#
# `Cluster::from_env()` reads SLURM_PROCID, SLURM_NTASKS, SLURM_STEP_NODELIST and
# SLURM_STEP_TASKS_PER_NODE (set by srun): task k of a node listens on FLOCK_PORT + k. Process 0
# (task 0) prints the result. timely's connections are neither encrypted nor authenticated: use
# the cluster's internal network only.
#SBATCH --job-name=flock-etl
#SBATCH --nodes=4
#SBATCH --ntasks-per-node=1
#SBATCH --cpus-per-task=16
#SBATCH --time=01:00:00
#SBATCH --output=flock-etl-%j.out

set -euo pipefail
export FLOCK_PORT=2101
export FLOCK_STARTUP_TIMEOUT=120
# Each process uses its allocated cores for its own chunks.
export FLOCK_THREADS="${SLURM_CPUS_PER_TASK:-1}"
# With part files on a shared file system a rerun (sbatch again) computes only missing chunks:
# see `Cluster::parts`.
srun --kill-on-bad-exit=1 ./target/release/examples/distributed --rows 20000000 --chunks 256
