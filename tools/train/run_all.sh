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
# An MDLM trained from scratch this briefly stays at the unigram level (NELBO bound = unigram
# perplexity), so the SpecDiff drafter starts from the AR drafter's weights (ar_to_mdlm.py) and is fine-tuned on
# the drafting objective; both drafters get the same new data: the target's greedy and temperature-1 continuations
# of short prompts (what greedy and sampled decoding make them predict).
[ -f $R/distil-greedy/train.bin ] || $PY tools/train/sample_distil.py --temperature 0 --length 96 --tokens 300000 \
  --threads 2 --batch 128 --out distil-greedy >> $R/sample_distil.txt 2>&1
[ -f $R/distil-t1/train.bin ] || $PY tools/train/sample_distil.py --temperature 1 --length 96 --tokens 300000 \
  --threads 2 --batch 128 --out distil-t1 >> $R/sample_distil.txt 2>&1
[ -f $R/mdlm-from-ar/done ] || $PY tools/train/ar_to_mdlm.py --ar-run drafter-ar+distil --out mdlm-from-ar
NEW_DATA="--data distil-greedy=1 --data distil-t1=1"
train drafter-mdlm drafter-mdlm+ar-init --init-run mdlm-from-ar $NEW_DATA --draft-batch 64 --batch 4 --steps 1000 --lr 5e-4
train drafter-ar drafter-ar+draft --init-run drafter-ar+distil $NEW_DATA --steps 400 --lr 5e-4
# The MDLM drafter's acceptance is still rising when that fine-tuning ends, so it goes on
# (3000 more steps, lower peak lr) with four times the greedy continuations (re-made from row 0: prompts are
# seeded per batch, so the first 300 K tokens come from the same prompts), weighted twice, since greedy
# decoding is where SpecDiff is judged.
[ "$(stat -c %s $R/distil-greedy/train.bin)" -ge 2400000 ] || $PY tools/train/sample_distil.py --temperature 0 \
  --length 96 --tokens 1200000 --threads 2 --batch 128 --out distil-greedy >> $R/sample_distil.txt 2>&1
train drafter-mdlm drafter-mdlm+long --init-run drafter-mdlm+ar-init --data distil-greedy=2 --data distil-t1=1 \
  --draft-batch 64 --batch 4 --steps 3000 --lr 3e-4
# The drafting objective with block-causal attention and contexts up to 192 tokens, so that the
# runtime drafts with a KV cache of the whole context (drafter-mdlm+long already worked that way untrained,
# having started from an AR model; this teaches it). Its NELBO term stays bidirectional (upstream MDLM use).
train drafter-mdlm drafter-mdlm+bc --init-run drafter-mdlm+long --data distil-greedy=2 --data distil-t1=1 \
  --draft-batch 64 --draft-context 8,192 --block-causal --batch 4 --steps 1200 --lr 2e-4
# Soft labels. The sampled acceptance rule compares q with the target's p, so the drafting
# objective also learns p itself (the target's teacher-forced distribution at each masked position, weight 0.7).
train drafter-mdlm drafter-mdlm+kd --init-run drafter-mdlm+bc --data distil-greedy=2 --data distil-t1=1 \
  --draft-batch 64 --draft-context 8,192 --block-causal --batch 4 --steps 900 --lr 2e-4 --teacher-run target \
  --teacher-weight 0.7
# Inside longer greedy generations the target loops ("and the United States, and the United States and ..."),
# where a drafter without such text falls behind the AR drafter (128 tokens: 4.06 against 4.79 tokens per pass
# at gamma 6). Data: the target's greedy continuations of 192 tokens after 64-token prompts (the bench's prompt
# length), weighted like the short ones, contexts up to 256, soft-label weight 0.5.
[ -f $R/distil-greedy-long/train.bin ] || $PY tools/train/sample_distil.py --temperature 0 --prompt 64 \
  --length 192 --tokens 600000 --threads 2 --batch 128 --out distil-greedy-long >> $R/sample_distil.txt 2>&1
train drafter-mdlm drafter-mdlm+loop --init-run drafter-mdlm+kd --data distil-greedy=2 --data distil-greedy-long=2 \
  --data distil-t1=1 --draft-batch 64 --draft-context 8,256 --block-causal --batch 4 --steps 700 --lr 1.5e-4 \
  --teacher-run target --teacher-weight 0.5
$PY tools/train/export.py --ar-run drafter-ar+draft --mdlm-run drafter-mdlm+loop >> $R/export.txt 2>&1
# The draft head: one causal block over the draft, so that each drafted position reads the token drafted before
# it (a T = 1 draft draws every position independently); the backbone stays frozen, its NELBO unchanged.
HEAD="--data distil-t1=2 --data distil-greedy=1 --data distil-greedy-long=1 --draft-batch 48 --draft-context 8,160
  --draft-gamma 1,16 --block-causal --batch 1 --teacher-run target --teacher-weight 0.7 --draft-head"
train drafter-mdlm drafter-mdlm+head --init-run drafter-mdlm+loop $HEAD --steps 500 --lr 1.5e-3
train drafter-mdlm drafter-mdlm+head2 --init-run drafter-mdlm+head $HEAD --steps 1000 --lr 1e-3
train drafter-mdlm drafter-mdlm+head3 --init-run drafter-mdlm+head2 $HEAD --steps 1000 --lr 7e-4
$PY tools/train/export.py --ar-run drafter-ar+draft --mdlm-run drafter-mdlm+head3 >> $R/export.txt 2>&1
# The drafter made from the AR drafter with its layout kept (docs/training.md, "The AR drafter's layout"). Its head
# starts from the head trained on a shifted backbone (docs/training.md, "Shifted logits"), which starts from step 19's.
$PY tools/train/ar_to_mdlm.py --ar-run drafter-ar+draft --out mdlm-shift-from-ar --shift-logits >> $R/export.txt 2>&1
train drafter-mdlm drafter-mdlm+shift --init-run mdlm-shift-from-ar --data distil-greedy=1 --data distil-greedy-long=2 \
  --data distil-t1=2 --draft-batch 64 --draft-context 8,256 --block-causal --batch 2 --steps 400 --lr 5e-4 \
  --teacher-run target --teacher-weight 0.5
train drafter-mdlm drafter-mdlm+shift-head-warm --init-run drafter-mdlm+shift --head-from drafter-mdlm+head3 $HEAD \
  --steps 600 --lr 7e-4
train drafter-mdlm drafter-mdlm+shift-loop --init-run drafter-mdlm+shift --data distil-greedy=2 --data distil-greedy-long=2 \
  --data distil-t1=1 --draft-batch 64 --draft-context 8,256 --block-causal --batch 2 --steps 300 --lr 2e-4 \
  --teacher-run target --teacher-weight 0.5
train drafter-mdlm drafter-mdlm+shift-loop-head --init-run drafter-mdlm+shift-loop --head-from drafter-mdlm+shift-head-warm \
  $HEAD --steps 300 --lr 5e-4
$PY tools/train/ar_to_mdlm.py --ar-run drafter-ar+draft --out mdlm-arlayout-from-ar --ar-layout >> $R/export.txt 2>&1
train drafter-mdlm drafter-mdlm+arlayout-ctx --init-run mdlm-arlayout-from-ar --data distil-greedy=1 \
  --data distil-greedy-long=2 --data distil-t1=2 --draft-batch 64 --draft-context 8,256 --block-causal --batch 2 \
  --steps 400 --lr 5e-4 --teacher-run target --teacher-weight 0.5 --context-rows 16 --nelbo-weight 0
train drafter-mdlm drafter-mdlm+arlayout-joint --init-run drafter-mdlm+arlayout-ctx --head-from drafter-mdlm+shift-loop-head \
  --data distil-t1=2 --data distil-greedy=1 --data distil-greedy-long=2 --draft-batch 48 --draft-context 8,160 \
  --draft-gamma 1,16 --block-causal --batch 1 --teacher-run target --teacher-weight 0.7 --draft-head \
  --train-backbone 0.3 --context-rows 16 --steps 400 --lr 7e-4
# The same objective, longer (docs/training.md, "Longer joint training"), three times.
JOINT="--data distil-t1=2 --data distil-greedy=1 --data distil-greedy-long=2 --draft-batch 48 --draft-context 8,160
  --draft-gamma 1,16 --block-causal --batch 2 --teacher-run target --teacher-weight 0.7 --draft-head
  --train-backbone 0.3 --context-rows 16"
train drafter-mdlm drafter-mdlm+arlayout-joint2 --init-run drafter-mdlm+arlayout-joint $JOINT --steps 700 --lr 4e-4
train drafter-mdlm drafter-mdlm+arlayout-joint3 --init-run drafter-mdlm+arlayout-joint2 $JOINT --steps 1000 --lr 3e-4
train drafter-mdlm drafter-mdlm+arlayout-joint4 --init-run drafter-mdlm+arlayout-joint3 $JOINT --steps 1600 --lr 3e-4
# The head's chain trained from the second draft position, where the runtime starts it (docs/training.md,
# "The head's chain trained from the second position").
train drafter-mdlm drafter-mdlm+arlayout-joint5 --init-run drafter-mdlm+arlayout-joint4 $JOINT --head-start 1 --steps 2000 --lr 3e-4
# The accepted-length term at the sampling settings users run (docs/training.md, "Aimed at accepted length where
# users sample"), then stronger and weighted two to one toward temperature 0.8 / top-k 50.
train drafter-mdlm drafter-mdlm+arlayout-joint7 --init-run drafter-mdlm+arlayout-joint5 $JOINT --head-start 1 --steps 1500 --lr 2e-4 \
    --accept-weight 0.5 --accept-sampling 0.8,50 --accept-sampling 1,0
train drafter-mdlm drafter-mdlm+arlayout-joint8 --init-run drafter-mdlm+arlayout-joint7 $JOINT --head-start 1 --steps 1500 --lr 2e-4 \
    --accept-weight 1.0 --accept-sampling 0.8,50 --accept-sampling 0.8,50 --accept-sampling 1,0
# The same term also at temperature 0.3, a smooth stand-in for greedy, with twice the short greedy continuations
# (docs/training.md, end of "Aimed at accepted length where users sample"): the bundled drafter.
train drafter-mdlm drafter-mdlm+arlayout-joint10 --init-run drafter-mdlm+arlayout-joint8 \
    ${JOINT/distil-greedy=1/distil-greedy=2} --head-start 1 --steps 1000 --lr 2e-4 \
    --accept-weight 1.0 --accept-sampling 0.8,50 --accept-sampling 1,0 --accept-sampling 0.3,50
$PY tools/train/export.py --ar-run drafter-ar+draft --mdlm-run drafter-mdlm+arlayout-joint10 >> $R/export.txt 2>&1
