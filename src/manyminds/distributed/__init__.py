"""Running eval pairs and batch lines on a Ray cluster (the optional `ray` extra).

    ray_env.py      import Ray (or say how to install it), connect or start a local instance
    limits.py       per-provider caps held cluster-wide: one named actor of leased slots
    recipe.py       what a worker needs to build the council itself (settings, names)
    tape.py         a recorder that tapes a run on a worker, replayed into SQLite on the driver
    eval_tasks.py   `eval run --ray`: the runner's own per-pair function, run as Ray tasks
    batch_tasks.py  `batch --ray`: the batch's own per-line function, run as Ray tasks

One rule holds everywhere: workers compute, the driver alone writes the database (in the order
results arrive), so a driver killed with kill -9 loses only what was in flight and `--resume`
works exactly as it does in-process. Nothing here is imported unless `--ray` is asked for.
"""
