#!/bin/bash
# Dense (old) vs matrix-free (new) SNODE, interleaved, one core. Old tree: git archive 5649b10^ | tar -x -C /tmp/oldsn
# Results: /tmp/snab/<side>-<horizon>-<round>/records.parquet (time_per_iter_s, alloc_peak_bytes; medians quoted in
# nodebench/papers/snode/README.md, Measured).
cd /tmp
for r in 1 2 3; do
 for h in 2.5 10.0 40.0; do
  for side in old new; do
   if [ $side = old ]; then PP=/tmp/oldsn; else PP=/work/main; fi
   out=/tmp/snab/$side-$h-$r; rm -rf $out
   PYTHONPATH=$PP taskset -c 0 /work/main/.venv/bin/python -c "import sys; from nodebench.cli import main; sys.exit(main(sys.argv[1:]))" run --task vehicle --method snode --iters 20 --hparam horizon=$h --hparam n_train=32 --hparam noise=0.01 --hparam snode_gamma=0.1 --hparam snode_weight_steps=10 --out $out --no-progress >/dev/null 2>&1 || echo fail $out
  done
 done
done
