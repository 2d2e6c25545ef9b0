#!/bin/bash
# Dense (old = git archive 5649b10^), first matrix-free (head = git archive 5649b10) and small maps dense +
# batched matrix-free products (mine = the commit that adds elements.DENSE_COLUMNS), interleaved, one core.
# Each tree extracted under /tmp/snodesmall/<side>; medians quoted in nodebench/papers/snode/README.md, Measured.
cd /tmp
for r in 1 2 3; do
 for h in 2.5 10.0 40.0 200.0; do
  for side in old head mine; do
   if [ $h = 200.0 ] && [ $side = old ]; then continue; fi
   PP=/tmp/snodesmall/$side; it=20; [ $h = 200.0 ] && it=10
   out=/tmp/snodesmall/ab/$side-$h-$r; rm -rf $out
   PYTHONPATH=$PP taskset -c 0 /work/main/.venv/bin/python -c "import sys; from nodebench.cli import main; sys.exit(main(sys.argv[1:]))" run --task vehicle --method snode --iters $it --hparam horizon=$h --hparam n_train=32 --hparam noise=0.01 --hparam snode_gamma=0.1 --hparam snode_weight_steps=10 --out $out --no-progress >/dev/null 2>&1 || echo fail $out
  done
 done
done
echo done
