#!/bin/bash
# S4 with 3 seeds: rk4 and SNODE time per iteration over the vehicle horizons, one core (vehicle_horizon's options)
for h in 2.5 5.0 10.0 20.0 40.0; do
  taskset -c 0 /work/main/.venv/bin/nodebench run --task vehicle --method snode,rk4 --seeds 3 --iters 20 \
    --hparam horizon=$h --hparam n_train=32 --hparam noise=0.01 --hparam snode_gamma=0.1 \
    --hparam snode_weight_steps=10 --out /tmp/s4seeds/h$h --no-progress > /tmp/s4seeds-h$h.log 2>&1 || echo fail $h
done
