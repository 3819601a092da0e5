#!/usr/bin/env bash
# Train the whole family in sequence, then export to models/. Rerun to resume: every stage resumes from its
# checkpoint (tools/train/runs/<run>/ckpt.pt) or is skipped when complete (runs/<run>/done).
#   nohup tools/train/run_all.sh > tools/train/runs/run_all.txt 2>&1 &
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="nice -n 19 /usr/bin/python3"
R=tools/train/runs
mkdir -p $R
[ -f $R/data/val.bin ] || { $PY tools/train/data.py && $PY tools/train/bpe.py; }

train() {  # model run [args...]: one process per <= 110 min, resumed until the schedule is complete
  local model=$1 run=$2; shift 2
  mkdir -p $R/$run
  until [ -f $R/$run/done ]; do
    $PY tools/train/train.py --model $model --run $run "$@" >> $R/$run/stdout.txt 2>&1
  done
}

train target target
[ -f $R/distil/train.bin ] || $PY tools/train/sample_distil.py --tokens 300000 --threads 2 >> $R/sample_distil.txt 2>&1
# The drafters train on real text mixed with text sampled from the target (one row in three): that is what buys
# acceptance (tools/train/acceptance.py compares against the plain short runs). SpecDiff's drafter goes first.
train drafter-mdlm drafter-mdlm+distil --distil --distil-weight 0.5
train drafter-ar drafter-ar+distil --distil --distil-weight 0.5
$PY tools/train/export.py --ar-run drafter-ar+distil --mdlm-run drafter-mdlm+distil >> $R/export.txt 2>&1
