// Package slurm holds the integration test of llem's Slurm array execution
// (scripts/slurm/: the array-job template, the submit helper, the merge job)
// on a real cluster: the one-node cluster that scripts/test-setup.d/slurm.sh
// starts from Debian's slurm-wlm and munge. The scripts are bash; this
// package has no code of its own. See docs/slurm.md.
package slurm
